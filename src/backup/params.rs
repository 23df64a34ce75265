//! Arguments of the `backup` command, built the way qemu-server builds them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Secret, FDNAME};
use crate::error::{Error, Result};
use crate::loose;

/// Refuses a `devlist` that names a device twice or has an empty name. pve-qemu splits it
/// on `,`, `;` and `:` (`g_strsplit_set` in its `pve-backup.c`) and 10.0.2 crashes on a
/// repeated device (it calls `job_unref` on NULL; unchanged at pve-qemu's head), so this
/// runs before anything is sent.
pub fn check_devlist(devlist: &str) -> Result<()> {
    let mut seen: Vec<&str> = Vec::new();
    for name in devlist.split([',', ';', ':']) {
        if name.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "devlist '{devlist}' has an empty device name"
            )));
        }
        if seen.contains(&name) {
            return Err(Error::InvalidArgument(format!(
                "devlist '{devlist}' names device '{name}' twice"
            )));
        }
        seen.push(name);
    }
    Ok(())
}

/// A VMA backup into a file descriptor registered with `getfd`. As JSON (C and Perl):
/// `config-file`, `firewall-file`, `devlist`, vzdump's `bwlimit` and `max-workers`; unknown keys are
/// refused ([`crate::loose::from_json`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct VmaParams {
    /// Guest config to embed (`<tmpdir>/qemu-server.conf`).
    #[serde(default, deserialize_with = "loose::opt_string")]
    pub config_file: Option<String>,
    /// Firewall config to embed, if the VM has one.
    #[serde(default, deserialize_with = "loose::opt_string")]
    pub firewall_file: Option<String>,
    /// Comma-separated device names (`drive-scsi0,drive-efidisk0`); absent = all disks.
    #[serde(default, deserialize_with = "loose::opt_string")]
    pub devlist: Option<String>,
    /// vzdump's `bwlimit` in KiB/s; sent as `speed` in bytes/s, 0 (unlimited) if absent.
    #[serde(default, rename = "bwlimit", deserialize_with = "loose::opt_u64")]
    pub bwlimit_kib: Option<u64>,
    /// Parallel workers (today's `performance` `max-workers`), sent only when set.
    #[serde(default, deserialize_with = "loose::opt_i64")]
    pub max_workers: Option<i64>,
}

impl VmaParams {
    /// Checks what QEMU must not see ([`check_devlist`]).
    pub fn validate(&self) -> Result<()> {
        self.devlist.as_deref().map_or(Ok(()), check_devlist)
    }

    /// The `backup` arguments: target `/dev/fdname/backup`, `speed` always (as the seed).
    pub fn to_arguments(&self) -> Value {
        let speed = self.bwlimit_kib.unwrap_or(0).saturating_mul(1024);
        let mut args = serde_json::json!({
            "backup-file": format!("/dev/fdname/{FDNAME}"),
            "speed": speed,
        });
        for (key, value) in [
            ("config-file", &self.config_file),
            ("firewall-file", &self.firewall_file),
            ("devlist", &self.devlist),
        ] {
            if let Some(v) = value {
                args[key] = Value::from(v.as_str());
            }
        }
        if let Some(workers) = self.max_workers {
            args["max-workers"] = Value::from(workers);
        }
        args
    }
}

/// A backup to a Proxmox Backup Server: the `backup` command's arguments by their QMP names
/// (as today's qemu-server `archive_pbs` sends them), in JSON as on the wire. The optional
/// ones are sent only when set, so an older QEMU that lacks them is not given arguments
/// it would reject; unknown keys are refused ([`crate::loose::from_json`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PbsParams {
    /// Repository `user@realm@server[:port]:datastore` (`backup-file`).
    #[serde(rename = "backup-file", deserialize_with = "loose::string")]
    pub repository: String,
    /// Backup id (qemu-server passes the VMID).
    #[serde(deserialize_with = "loose::string")]
    pub backup_id: String,
    /// Backup time, epoch seconds.
    #[serde(deserialize_with = "loose::i64")]
    pub backup_time: i64,
    /// Password or API token secret.
    #[serde(default, deserialize_with = "loose::opt_secret")]
    #[serde(serialize_with = "expose", skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Server certificate fingerprint.
    #[serde(default, deserialize_with = "loose::opt_string")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Guest config to embed.
    #[serde(default, deserialize_with = "loose::opt_string")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_file: Option<String>,
    /// Firewall config to embed.
    #[serde(default, deserialize_with = "loose::opt_string")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firewall_file: Option<String>,
    /// Comma-separated device names.
    #[serde(default, deserialize_with = "loose::opt_string")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devlist: Option<String>,
    /// Encryption key file.
    #[serde(default, deserialize_with = "loose::opt_string")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyfile: Option<String>,
    /// Password of the key file.
    #[serde(default, deserialize_with = "loose::opt_secret")]
    #[serde(serialize_with = "expose", skip_serializing_if = "Option::is_none")]
    pub key_password: Option<Secret>,
    /// Master public key file (PEM).
    #[serde(default, deserialize_with = "loose::opt_string")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_keyfile: Option<String>,
    /// Encrypt (QEMU's default: true iff a keyfile is given).
    #[serde(default, deserialize_with = "loose::opt_bool")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypt: Option<bool>,
    /// Compress (QEMU's default: true).
    #[serde(default, deserialize_with = "loose::opt_bool")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compress: Option<bool>,
    /// Namespace on the datastore.
    #[serde(default, deserialize_with = "loose::opt_string")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_ns: Option<String>,
    /// Use and maintain the dirty bitmap for incremental backups.
    #[serde(default, deserialize_with = "loose::opt_bool")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_dirty_bitmap: Option<bool>,
    /// Parallel workers per job.
    #[serde(default, deserialize_with = "loose::opt_i64")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_workers: Option<i64>,
    /// Use fleecing images (`<device>-fleecing` nodes must exist).
    #[serde(default, deserialize_with = "loose::opt_bool")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleecing: Option<bool>,
    /// Rate limit in bytes/s.
    #[serde(default, deserialize_with = "loose::opt_i64")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<i64>,
}

/// A secret goes on the wire as its value, nowhere else.
fn expose<S: serde::Serializer>(
    secret: &Option<Secret>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => s.serialize_str(secret.expose()),
        None => s.serialize_none(),
    }
}

impl PbsParams {
    /// Checks what QEMU must not see ([`check_devlist`]).
    pub fn validate(&self) -> Result<()> {
        self.devlist.as_deref().map_or(Ok(()), check_devlist)
    }

    /// The `backup` arguments with `format: pbs`. Contains the secrets: do not log it.
    pub fn to_arguments(&self) -> Value {
        let mut args = serde_json::to_value(self).expect("plain strings, numbers and booleans");
        args["format"] = Value::from("pbs");
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vma_arguments_like_the_seed() {
        let p = VmaParams {
            config_file: Some("/tmp/x/qemu-server.conf".into()),
            firewall_file: None,
            devlist: Some("drive-scsi0,drive-virtio1".into()),
            bwlimit_kib: Some(1000),
            max_workers: None,
        };
        assert_eq!(
            p.to_arguments(),
            json!({"backup-file": "/dev/fdname/backup", "speed": 1024000,
                   "config-file": "/tmp/x/qemu-server.conf", "devlist": "drive-scsi0,drive-virtio1"})
        );
        assert_eq!(VmaParams::default().to_arguments()["speed"], 0);
    }

    #[test]
    fn devlists_that_crash_qemu_are_refused() {
        for good in ["drive-scsi0", "drive-scsi0,drive-efidisk0", "a;b:c,d"] {
            assert!(check_devlist(good).is_ok(), "{good}");
        }
        assert_eq!(
            check_devlist("drive-scsi0;drive-scsi0")
                .unwrap_err()
                .to_string(),
            "devlist 'drive-scsi0;drive-scsi0' names device 'drive-scsi0' twice"
        );
        assert!(check_devlist("a,b:a").is_err());
        for empty in ["", "a,", ",a", "a,,b", "a;:b"] {
            let e = check_devlist(empty).unwrap_err().to_string();
            assert!(e.ends_with("has an empty device name"), "{empty}: {e}");
        }
        let p = VmaParams {
            devlist: Some("x,x".into()),
            ..VmaParams::default()
        };
        assert!(p.validate().is_err());
        assert!(VmaParams::default().validate().is_ok());
    }

    /// Every parameter by its QMP name: what comes in as JSON goes to QEMU as it came
    /// (a new parameter is added to the type and to this list).
    #[test]
    fn pbs_parameters_go_to_qemu_by_their_qmp_names() {
        let all = json!({
            "backup-file": "root@pam@pbs:store", "backup-id": "100", "backup-time": 1_700_000_000,
            "password": "pw", "fingerprint": "aa:bb", "config-file": "/t/qemu-server.conf",
            "firewall-file": "/t/qemu-server.fw", "devlist": "drive-scsi0",
            "keyfile": "/k", "key-password": "kpw", "master-keyfile": "/m", "encrypt": true,
            "compress": false, "backup-ns": "ns1", "use-dirty-bitmap": true,
            "max-workers": 4, "fleecing": false, "speed": 1024,
        });
        let params: PbsParams = crate::loose::from_json(all.clone()).unwrap();
        let mut want = all;
        want["format"] = json!("pbs");
        assert_eq!(params.to_arguments(), want);
        // Perl's loose values: numbers for strings, strings for numbers, 1/0 for booleans.
        let perl = json!({"backup-file": "r", "backup-id": 100, "backup-time": "5", "encrypt": 1});
        let params: PbsParams = crate::loose::from_json(perl).unwrap();
        assert_eq!(
            params.to_arguments(),
            json!({"format": "pbs", "backup-file": "r", "backup-id": "100", "backup-time": 5,
                   "encrypt": true})
        );
    }

    #[test]
    fn vma_parameters_from_json() {
        let p: VmaParams = crate::loose::from_json(json!({
            "config-file": "/t/c", "devlist": "drive-scsi0", "bwlimit": "1000", "max-workers": "4"
        }))
        .unwrap();
        assert_eq!(p.to_arguments()["speed"], 1_024_000);
        assert_eq!(p.to_arguments()["max-workers"], 4);
        assert!(VmaParams::default()
            .to_arguments()
            .get("max-workers")
            .is_none());
        let e = crate::loose::from_json::<VmaParams>(json!({"bwlimit": -1})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "parameter 'bwlimit' must be an integer of 0 or more"
        );
    }

    #[test]
    fn pbs_sends_only_what_is_set_and_debug_hides_secrets() {
        let p = PbsParams {
            repository: "root@pam@pbs:store".into(),
            backup_id: "100".into(),
            backup_time: 1_700_000_000,
            password: Some(Secret::new("hunter2")),
            key_password: Some(Secret::new("keypw")),
            ..PbsParams::default()
        };
        assert_eq!(
            p.to_arguments(),
            json!({"format": "pbs", "backup-file": "root@pam@pbs:store", "backup-id": "100",
                   "backup-time": 1_700_000_000, "password": "hunter2", "key-password": "keypw"})
        );
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("keypw"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }
}
