//! Arguments of the `backup` command, built the way qemu-server builds them.

use serde_json::{Map, Value};

use super::{Secret, FDNAME};
use crate::error::{Error, Result};

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

/// A VMA backup into a file descriptor registered with `getfd`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmaParams {
    /// Guest config to embed (`<tmpdir>/qemu-server.conf`).
    pub config_file: Option<String>,
    /// Firewall config to embed, if the VM has one.
    pub firewall_file: Option<String>,
    /// Comma-separated device names (`drive-scsi0,drive-efidisk0`); absent = all disks.
    pub devlist: Option<String>,
    /// vzdump's `bwlimit` in KiB/s; sent as `speed` in bytes/s, 0 (unlimited) if absent.
    pub bwlimit_kib: Option<u64>,
}

impl VmaParams {
    /// Checks what QEMU must not see ([`check_devlist`]).
    pub fn validate(&self) -> Result<()> {
        self.devlist.as_deref().map_or(Ok(()), check_devlist)
    }

    /// The `backup` arguments: target `/dev/fdname/backup`, `speed` always (as the seed).
    pub fn to_arguments(&self) -> Value {
        let mut args = Map::new();
        args.insert(
            "backup-file".into(),
            Value::String(format!("/dev/fdname/{FDNAME}")),
        );
        let speed = self.bwlimit_kib.unwrap_or(0).saturating_mul(1024);
        args.insert("speed".into(), Value::from(speed));
        put_str(&mut args, "config-file", &self.config_file);
        put_str(&mut args, "firewall-file", &self.firewall_file);
        put_str(&mut args, "devlist", &self.devlist);
        Value::Object(args)
    }
}

/// A backup to a Proxmox Backup Server. The optional fields are sent only when set, so an
/// older QEMU that lacks them is not given arguments it would reject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PbsParams {
    /// Repository `user@realm@server[:port]:datastore`.
    pub repository: String,
    /// Backup id (qemu-server passes the VMID).
    pub backup_id: String,
    /// Backup time, epoch seconds.
    pub backup_time: i64,
    /// Password or API token secret.
    pub password: Option<Secret>,
    /// Server certificate fingerprint.
    pub fingerprint: Option<String>,
    /// Guest config to embed.
    pub config_file: Option<String>,
    /// Firewall config to embed.
    pub firewall_file: Option<String>,
    /// Comma-separated device names.
    pub devlist: Option<String>,
    /// Encryption key file.
    pub keyfile: Option<String>,
    /// Password of the key file.
    pub key_password: Option<Secret>,
    /// Master public key file (PEM).
    pub master_keyfile: Option<String>,
    /// Encrypt (QEMU's default: true iff a keyfile is given).
    pub encrypt: Option<bool>,
    /// Compress (QEMU's default: true).
    pub compress: Option<bool>,
    /// Namespace on the datastore.
    pub backup_ns: Option<String>,
    /// Use and maintain the dirty bitmap for incremental backups.
    pub use_dirty_bitmap: Option<bool>,
    /// Parallel workers per job.
    pub max_workers: Option<i64>,
    /// Use fleecing images (`<device>-fleecing` nodes must exist).
    pub fleecing: Option<bool>,
    /// Rate limit in bytes/s.
    pub speed: Option<i64>,
}

impl PbsParams {
    /// Checks what QEMU must not see ([`check_devlist`]).
    pub fn validate(&self) -> Result<()> {
        self.devlist.as_deref().map_or(Ok(()), check_devlist)
    }

    /// The `backup` arguments with `format: pbs`. Contains the secrets: do not log it.
    pub fn to_arguments(&self) -> Value {
        let mut args = Map::new();
        args.insert("format".into(), Value::from("pbs"));
        args.insert("backup-file".into(), Value::from(self.repository.clone()));
        args.insert("backup-id".into(), Value::from(self.backup_id.clone()));
        args.insert("backup-time".into(), Value::from(self.backup_time));
        let password = self.password.as_ref().map(|s| s.expose().to_string());
        put_str(&mut args, "password", &password);
        put_str(&mut args, "fingerprint", &self.fingerprint);
        put_str(&mut args, "config-file", &self.config_file);
        put_str(&mut args, "firewall-file", &self.firewall_file);
        put_str(&mut args, "devlist", &self.devlist);
        put_str(&mut args, "keyfile", &self.keyfile);
        let key_password = self.key_password.as_ref().map(|s| s.expose().to_string());
        put_str(&mut args, "key-password", &key_password);
        put_str(&mut args, "master-keyfile", &self.master_keyfile);
        put_str(&mut args, "backup-ns", &self.backup_ns);
        for (key, value) in [
            ("encrypt", self.encrypt),
            ("compress", self.compress),
            ("use-dirty-bitmap", self.use_dirty_bitmap),
            ("fleecing", self.fleecing),
        ] {
            if let Some(v) = value {
                args.insert(key.into(), Value::from(v));
            }
        }
        for (key, value) in [("max-workers", self.max_workers), ("speed", self.speed)] {
            if let Some(v) = value {
                args.insert(key.into(), Value::from(v));
            }
        }
        Value::Object(args)
    }
}

fn put_str(args: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        args.insert(key.into(), Value::from(v.clone()));
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
            "invalid argument - devlist 'drive-scsi0;drive-scsi0' names device 'drive-scsi0' twice"
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
