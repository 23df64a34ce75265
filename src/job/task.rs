//! The job's parameters as serde types: what a vzdump plugin knows when `archive` is
//! called (`$task`, the VM's config, `$self->{vm_was_running}`), in JSON for C and Perl.

use std::os::fd::RawFd;

use serde::Deserialize;

use crate::backup::PbsParams;
use crate::error::{Error, Result};
use crate::loose;

/// vzdump's backup mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The VM keeps running (the default).
    #[default]
    Snapshot,
    /// The VM is suspended around the start.
    Suspend,
    /// The VM was shut down before and is started paused for the backup.
    Stop,
}

/// One disk of the task (`$task->{disks}`): its kind and its QEMU device.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// `block` or `file`; the only kinds QEMU backs up.
    #[serde(rename = "type", deserialize_with = "loose::string")]
    pub kind: String,
    /// The drive's QEMU name (`drive-scsi0`).
    #[serde(deserialize_with = "loose::string")]
    pub qmdevice: String,
}

/// What both formats need. As JSON, the members by these names in kebab-case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Task {
    /// vzdump's `--mode`.
    #[serde(default)]
    pub mode: Mode,
    /// The disks to back up, in order; at least one.
    pub disks: Vec<Disk>,
    /// The guest config to embed (`<tmpdir>/qemu-server.conf`).
    #[serde(deserialize_with = "loose::string")]
    pub config_file: String,
    /// The firewall config (`<tmpdir>/qemu-server.fw`); embedded only if the file exists.
    #[serde(default, deserialize_with = "loose::opt_string")]
    pub firewall_file: Option<String>,
    /// Whether the VM ran when the task was prepared (`vm_was_running`); absent: whether it
    /// runs when the job starts.
    #[serde(default, deserialize_with = "loose::opt_bool")]
    pub vm_was_running: Option<bool>,
    /// Today's `vm_was_paused`: the VM was paused before the backup (no freeze, no resume).
    #[serde(default, deserialize_with = "loose::opt_bool")]
    pub vm_was_paused: Option<bool>,
    /// The VM's config enables the guest agent.
    #[serde(default, deserialize_with = "loose::opt_bool")]
    pub agent: Option<bool>,
    /// Today's agent option `guest-fsfreeze` (or the older `freeze-fs-on-backup`); absent
    /// means on.
    #[serde(default, deserialize_with = "loose::opt_bool")]
    pub guest_fsfreeze: Option<bool>,
    /// The VM is a template (today's loop then logs no per-drive bitmap lines, and a PBS
    /// backup uses no dirty bitmap).
    #[serde(default, deserialize_with = "loose::opt_bool")]
    pub is_template: Option<bool>,
    /// When vzdump stopped the VM in stop mode (`$task->{vmstoptime}`, epoch seconds).
    #[serde(default, deserialize_with = "loose::opt_i64")]
    pub vm_stop_time: Option<i64>,
    /// vzdump's `bwlimit` in KiB/s.
    #[serde(default, deserialize_with = "loose::opt_u64")]
    pub bwlimit: Option<u64>,
    /// vzdump's `performance` `max-workers` (today's style only).
    #[serde(default, deserialize_with = "loose::opt_i64")]
    pub max_workers: Option<i64>,
}

impl Task {
    /// qemu-server's `_get_task_devlist`: the devices joined by commas.
    pub fn devlist(&self) -> Result<String> {
        if self.disks.is_empty() {
            return Err(Error::InvalidArgument(
                "the task has no disks: a diskless backup runs without QEMU (vma create or \
                 proxmox-backup-client), which is the caller's"
                    .into(),
            ));
        }
        let mut names = Vec::with_capacity(self.disks.len());
        for disk in &self.disks {
            if disk.kind != "block" && disk.kind != "file" {
                return Err(Error::Backup(format!(
                    "implement me (type '{}')",
                    disk.kind
                )));
            }
            names.push(disk.qmdevice.as_str());
        }
        let devlist = names.join(",");
        crate::backup::check_devlist(&devlist)?;
        Ok(devlist)
    }

    /// The firewall file if it exists (Perl's `-e`), as both formats send it.
    pub(crate) fn existing_firewall_file(&self) -> Option<&str> {
        self.firewall_file
            .as_deref()
            .filter(|f| std::fs::metadata(f).is_ok())
    }
}

/// A VMA backup job. As JSON: `task`, and `output-file` (created, as Perl's
/// `IO::File->new($filename, "w")`) or `output-fd` (vzdump's `--stdout`: the caller's open
/// descriptor, left open), and `compressor` (a command line run as Perl's `exec STRING`;
/// absent: QEMU writes the output itself).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct VmaJob {
    /// What both formats need.
    pub task: Task,
    /// The archive file to create.
    #[serde(default, deserialize_with = "loose::opt_string")]
    pub output_file: Option<String>,
    /// An open descriptor to write the archive to instead.
    #[serde(default, deserialize_with = "loose::opt_i64")]
    pub output_fd: Option<i64>,
    /// The compressor command (`zstd --threads=1`).
    #[serde(default, deserialize_with = "loose::opt_string")]
    pub compressor: Option<String>,
}

/// Where a VMA archive goes.
pub(crate) enum Output<'a> {
    File(&'a str),
    Fd(RawFd),
}

impl VmaJob {
    /// The output, checked: exactly one of `output-file` and `output-fd`.
    pub(crate) fn output(&self) -> Result<Output<'_>> {
        match (&self.output_file, self.output_fd) {
            (Some(file), None) => Ok(Output::File(file)),
            (None, Some(fd)) => RawFd::try_from(fd)
                .ok()
                .filter(|&fd| fd >= 0)
                .map(Output::Fd)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "parameter 'output-fd' must be an open file descriptor, got {fd}"
                    ))
                }),
            _ => Err(Error::InvalidArgument(
                "exactly one of the parameters 'output-file' and 'output-fd' must be given".into(),
            )),
        }
    }
}

/// A Proxmox Backup Server job. As JSON: `task`, and `pbs`: the server side of the
/// `backup` arguments by their QMP names (`backup-file` = repository, `backup-id`,
/// `backup-time`, `password`, `fingerprint`, `keyfile`, `master-keyfile`, `backup-ns`,
/// ...). The job adds what follows from the task (`devlist`, `config-file`,
/// `firewall-file`, `speed`, `max-workers`) and from QEMU's support (`encrypt`,
/// `use-dirty-bitmap`), so those may not be given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PbsJob {
    /// What both formats need.
    pub task: Task,
    /// The server side of the `backup` arguments.
    pub pbs: PbsParams,
}

impl PbsJob {
    /// Refuses `backup` arguments the job derives itself.
    pub(crate) fn validate(&self) -> Result<()> {
        let p = &self.pbs;
        for (name, given) in [
            ("devlist", p.devlist.is_some()),
            ("config-file", p.config_file.is_some()),
            ("firewall-file", p.firewall_file.is_some()),
            ("speed", p.speed.is_some()),
            ("max-workers", p.max_workers.is_some()),
            ("encrypt", p.encrypt.is_some()),
            ("use-dirty-bitmap", p.use_dirty_bitmap.is_some()),
        ] {
            if given {
                return Err(Error::InvalidArgument(format!(
                    "parameter 'pbs.{name}' is set by the job from the task, not given"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(disks: serde_json::Value) -> Task {
        loose::from_json(json!({"disks": disks, "config-file": "/t/qemu-server.conf"})).unwrap()
    }

    #[test]
    fn devlist_joins_the_devices_and_refuses_other_kinds() {
        let t = task(json!([
            {"type": "file", "qmdevice": "drive-scsi0"},
            {"type": "block", "qmdevice": "drive-efidisk0"}
        ]));
        assert_eq!(t.devlist().unwrap(), "drive-scsi0,drive-efidisk0");
        // proxmox/qemu-server src/PVE/VZDump/QemuServer.pm, _get_task_devlist (without
        // Perl's " at <file> line <n>." of a die without newline).
        let t = task(json!([{"type": "rbd", "qmdevice": "drive-scsi0"}]));
        assert_eq!(
            t.devlist().unwrap_err().to_string(),
            "implement me (type 'rbd')"
        );
        assert!(task(json!([]))
            .devlist()
            .unwrap_err()
            .to_string()
            .contains("no disks"));
        let twice = task(json!([
            {"type": "file", "qmdevice": "drive-scsi0"},
            {"type": "file", "qmdevice": "drive-scsi0"}
        ]));
        assert!(twice.devlist().unwrap_err().to_string().contains("twice"));
    }

    #[test]
    fn vma_output_is_a_file_or_a_descriptor() {
        let job = |extra: serde_json::Value| -> VmaJob {
            let mut v = json!({"task": {"disks": [], "config-file": "/c"}});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            loose::from_json(v).unwrap()
        };
        assert!(matches!(
            job(json!({"output-file": "/x.vma"})).output(),
            Ok(Output::File("/x.vma"))
        ));
        assert!(matches!(
            job(json!({"output-fd": 5})).output(),
            Ok(Output::Fd(5))
        ));
        for bad in [
            json!({}),
            json!({"output-file": "/x", "output-fd": 1}),
            json!({"output-fd": -1}),
        ] {
            assert!(job(bad.clone()).output().is_err(), "{bad}");
        }
    }

    #[test]
    fn pbs_arguments_the_job_derives_are_refused() {
        let job: PbsJob = loose::from_json(json!({
            "task": {"disks": [], "config-file": "/c"},
            "pbs": {"backup-file": "r", "backup-id": "100", "backup-time": 1, "devlist": "x"}
        }))
        .unwrap();
        assert_eq!(
            job.validate().unwrap_err().to_string(),
            "parameter 'pbs.devlist' is set by the job from the task, not given"
        );
    }
}
