//! The VM's power state around a backup, as qemu-server's plugin keeps it
//! (proxmox/qemu-server `src/PVE/VZDump/QemuServer.pm`: `enforce_vm_running_for_backup`,
//! `resume_vm_after_job_start`, `restore_vm_power_state`), with their lines and decisions.
//! Usable on their own for a backup assembled piecewise; the job calls them in order.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Host;
use crate::error::{Error, Result};
use crate::log::Level;
use crate::loose;
use crate::progress::{Clock, SystemClock};
use crate::qmp::{self, timeouts, Peer};
use crate::running;
use crate::style::Style;

/// What a plugin knows of the VM's power state, by the task's names (JSON for C and
/// Perl): given to [`PowerState::new`], and read back after the steps changed it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Known {
    /// `$self->{vm_was_running}`.
    #[serde(default, deserialize_with = "loose::opt_bool")]
    pub vm_was_running: Option<bool>,
    /// Today's `$self->{vm_was_paused}`.
    #[serde(default, deserialize_with = "loose::opt_bool")]
    pub vm_was_paused: Option<bool>,
    /// `$task->{vmstoptime}` in stop mode (epoch seconds); cleared by the first resume.
    #[serde(default, deserialize_with = "loose::opt_i64")]
    pub vm_stop_time: Option<i64>,
}

/// [`qmp::command`] or [`qmp::command_to_the_end`].
type CommandFn =
    fn(&Peer, &str, Option<Value>, Option<std::time::Duration>, &qmp::Options) -> Result<Value>;

/// What the plugin knows about the VM's power state during one backup.
#[derive(Debug, Clone)]
pub struct PowerState {
    peer: Peer,
    options: qmp::Options,
    vmid: u32,
    run_dir: PathBuf,
    was_running: bool,
    was_paused: bool,
    stop_time: Option<i64>,
}

impl PowerState {
    /// The state of VM `peer` (given by VM id: the running check reads its pid file) in
    /// the style of `options.style`. `was_running` is the plugin's `vm_was_running` from
    /// `prepare` (false: found out by [`enforce_running`](Self::enforce_running));
    /// `was_paused` today's `vm_was_paused` (ignored in the seed style); `stop_time` the
    /// task's `vmstoptime` in stop mode (epoch seconds).
    pub fn new(
        peer: &Peer,
        options: &qmp::Options,
        was_running: bool,
        was_paused: bool,
        stop_time: Option<i64>,
    ) -> Result<Self> {
        let (Some(vmid), Some(run_dir)) = (peer.vm_id(), peer.run_dir()) else {
            return Err(Error::InvalidArgument(
                "the VM's power state needs a VM given by its id, not a socket path".into(),
            ));
        };
        Ok(PowerState {
            peer: peer.clone(),
            options: options.clone(),
            vmid,
            run_dir: run_dir.to_path_buf(),
            was_running,
            was_paused: was_paused && options.style == Style::Current,
            stop_time,
        })
    }

    /// The state [`new`](Self::new) would take again: `vm_was_running` set by
    /// [`enforce_running`](Self::enforce_running), `vm_stop_time` cleared by the first
    /// resume.
    pub fn known(&self) -> Known {
        Known {
            vm_was_running: Some(self.was_running),
            vm_was_paused: Some(self.was_paused),
            vm_stop_time: self.stop_time,
        }
    }

    /// `vm_was_running`, as far as known.
    pub fn was_running(&self) -> bool {
        self.was_running
    }

    /// `vm_was_paused` (today's style only).
    pub fn was_paused(&self) -> bool {
        self.was_paused
    }

    /// `enforce_vm_running_for_backup`: a VM whose QEMU runs (qemu-server's
    /// `vm_running_locally`) counts as running before the backup; else `starting kvm to
    /// execute backup task`, and the caller starts it paused. Its error is the failure.
    pub fn enforce_running(&mut self, host: &dyn Host) -> Result<()> {
        if running::vm_running_locally(&self.run_dir, self.vmid).is_some() {
            self.was_running = true;
            return Ok(());
        }
        host.log(Level::Info, "starting kvm to execute backup task");
        host.start_vm_paused().map_err(Error::Backup)
    }

    /// `resume_vm_after_job_start`: for a VM that was running (today: and not paused),
    /// `resuming VM again` (`resuming VM again after <n> seconds` the first time in stop
    /// mode) and `cont` (today with 45 s). A failure of `cont` is returned.
    pub fn resume_after_start(&mut self, host: &dyn Host) -> Result<()> {
        self.resume(host, qmp::command)
    }

    /// Today's `resume_vm_after_job_start` after a failed backup: the same, but the `cont`
    /// runs to its end whatever signals arrive ([`qmp::command_to_the_end`]), so that a
    /// VM paused for the backup is not left paused by a second signal.
    pub fn resume_after_failure(&mut self, host: &dyn Host) -> Result<()> {
        self.resume(host, qmp::command_to_the_end)
    }

    fn resume(&mut self, host: &dyn Host, command: CommandFn) -> Result<()> {
        if !self.was_running || self.was_paused {
            return Ok(());
        }
        match self.stop_time.take() {
            Some(stopped) => {
                let delay = SystemClock.now_secs() - stopped;
                host.log(
                    Level::Info,
                    &format!("resuming VM again after {delay} seconds"),
                );
            }
            None => host.log(Level::Info, "resuming VM again"),
        }
        let timeout = (self.options.style == Style::Current).then_some(timeouts::CONT_AFTER_BACKUP);
        command(&self.peer, "cont", None, timeout, &self.options).map(drop)
    }

    /// `restore_vm_power_state`: a VM that was not running is stopped by the caller
    /// (`stopping kvm after backup task`) if QEMU is still in `prelaunch`, else kept
    /// (`kvm status changed after backup ('<status>') - keep VM running`). Failures are
    /// warnings, as qemu-server `warn`s them. The status query runs to its end whatever
    /// signals arrive, so that a VM started for the backup is not left in `prelaunch`.
    pub fn restore(&self, host: &dyn Host) {
        if self.was_running {
            return;
        }
        let reply = qmp::command_to_the_end(&self.peer, "query-status", None, None, &self.options);
        let status = match reply {
            Ok(reply) => status_of(&reply),
            Err(e) => return host.log(Level::Warn, &e.eval_text()),
        };
        if status == "prelaunch" {
            host.log(Level::Info, "stopping kvm after backup task");
            if let Err(e) = host.stop_vm() {
                host.log(Level::Warn, &e);
            }
        } else {
            host.log(
                Level::Info,
                &format!("kvm status changed after backup ('{status}') - keep VM running"),
            );
        }
    }
}

/// `$resp->{status}`, or `unknown`.
fn status_of(reply: &Value) -> String {
    match reply.get("status").and_then(Value::as_str) {
        Some(status) if !status.is_empty() => status.to_string(),
        _ => "unknown".into(),
    }
}
