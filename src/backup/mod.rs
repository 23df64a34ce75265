//! Proxmox's backup commands over QMP: start (VMA or PBS), query, cancel.
//!
//! Facts from pve-qemu (proxmox/pve-qemu, its `pve-backup.c` patch) and qemu-server
//! (proxmox/qemu-server `src/PVE/VZDump/QemuServer.pm`):
//! - a VMA start sends `getfd` (fdname `backup`) and `backup` with
//!   `backup-file: /dev/fdname/backup` over ONE connection, since named fds are per monitor
//!   connection; both share one 30 s budget, as in the seed's `queue_execute(30)`;
//! - a PBS start is one `backup` command with a timeout long enough for QEMU to connect to
//!   the server (125 s today; the seed used 60 s);
//! - `backup` returns `{"UUID": ...}`; `query-backup` returns a `BackupStatus` (decoded by
//!   [`crate::progress::query`], which the status loop runs);
//! - `backup-cancel` always succeeds. Quirk: it records `backup canceled` even when the job
//!   already ended `done`, so a later `query-backup` reports `error` / `backup canceled`.
//!   Cancel only a job you still consider running;
//! - a `devlist` naming a device twice crashes pve-qemu 10.0.2 (`job_unref` on NULL), so
//!   both starts refuse one before sending anything ([`check_devlist`]).
//!
//! Failure texts are qemu-server's ([`crate::Error`]); the VMA start, like the seed's
//! `queue_execute(30)`, dies with the bare reason (QEMU's `desc`, `got timeout`, ...).

mod params;
mod secret;

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use params::{check_devlist, PbsParams, VmaParams};
pub use secret::Secret;

use crate::error::{Error, Result};
use crate::log::Level;
use crate::qmp::{self, timeouts, Options, Peer, Qmp};

/// The fd name qemu-server registers the backup target under.
pub const FDNAME: &str = "backup";

/// Starts a VMA backup that QEMU writes into `target` (the output file, or the write end of
/// a compressor pipe): `getfd` then `backup`, on one connection, within `budget` (default
/// [`timeouts::VMA_BACKUP_START`]). Returns the job UUID. QEMU keeps its own duplicate of
/// `target`; the caller should close its copy once this returned, so that the compressor
/// sees EOF when QEMU is done.
///
/// As the seed's queue (`PVE::QMPClient::queue_execute`, not `mon_cmd`), it makes no
/// running check, and its failures read as the bare reason.
pub fn start_vma(
    peer: &Peer,
    options: &Options,
    target: BorrowedFd<'_>,
    params: &VmaParams,
    budget: Option<Duration>,
) -> Result<String> {
    params.validate()?;
    let budget = budget.unwrap_or(timeouts::VMA_BACKUP_START);
    let deadline = Instant::now() + budget;
    let start = || -> Result<String> {
        let mut qmp = Qmp::connect_within(peer, options, "getfd", Some((deadline, budget)))?;
        let getfd = serde_json::json!({ "fdname": FDNAME });
        qmp.execute_until("getfd", Some(getfd), Some(target), deadline, budget)?;
        let reply = qmp.execute_until(
            "backup",
            Some(params.to_arguments()),
            None,
            deadline,
            budget,
        );
        if reply.as_ref().is_err_and(|e| e.class().is_some()) {
            // QEMU keeps named fds past the connection: a refused backup would leave it
            // holding our pipe's write end, and the compressor would never see EOF. Best
            // effort; the start's own error is what the caller needs.
            let closefd = serde_json::json!({ "fdname": FDNAME });
            let _ = qmp.execute_until("closefd", Some(closefd), None, deadline, budget);
        }
        job_uuid(reply?)
    };
    settle_unknown_start(peer, options, budget, start()).map_err(Error::bare)
}

/// Starts a backup to a Proxmox Backup Server. `timeout` defaults to
/// [`timeouts::PBS_BACKUP_START`]. Returns the job UUID.
pub fn start_pbs(
    peer: &Peer,
    options: &Options,
    params: &PbsParams,
    timeout: Option<Duration>,
) -> Result<String> {
    params.validate()?;
    let timeout = timeout.unwrap_or(timeouts::PBS_BACKUP_START);
    let reply = qmp::command(
        peer,
        "backup",
        Some(params.to_arguments()),
        Some(timeout),
        options,
    );
    settle_unknown_start(peer, options, timeout, reply.and_then(job_uuid))
}

/// A start whose outcome is unknown -- a signal, or a timeout once `backup` was sent -- may
/// have left QEMU running a job nobody polls (qemu-server's seed does exactly that): it is
/// cancelled, to its end whatever signals arrive and within the start's own `timeout`,
/// before the start's error is returned unchanged.
fn settle_unknown_start(
    peer: &Peer,
    options: &Options,
    timeout: Duration,
    outcome: Result<String>,
) -> Result<String> {
    let unknown = match &outcome {
        Err(Error::Command(c)) => {
            matches!(c.cause, crate::error::Cause::Timeout { .. })
                && c.stage == crate::error::Stage::Command
        }
        Err(e) => e.is_interrupted(),
        Ok(_) => false,
    };
    if unknown {
        let _ = qmp::command_to_the_end(peer, "backup-cancel", None, Some(timeout), options);
    }
    outcome
}

/// `query-backup` on its own connection, QEMU's reply object as it came.
pub fn query_raw(peer: &Peer, options: &Options) -> Result<Value> {
    qmp::command(peer, "query-backup", None, None, options)
}

/// `backup-cancel` on its own connection (10 min timeout). See the module docs for the
/// quirk with finished jobs.
pub fn cancel(peer: &Peer, options: &Options) -> Result<()> {
    qmp::command(peer, "backup-cancel", None, None, options).map(drop)
}

/// The seed's `mon_backup_cancel`: logs `aborting backup job`, sends `backup-cancel`, and
/// logs a failure of that at error level (it never hides the original error). Once
/// decided, the cancel runs to its end ([`qmp::command_to_the_end`]): a second signal must
/// not leave the job running, as it does in qemu-server, where the handler's die ends
/// `mon_cmd`.
pub fn abort_job(peer: &Peer, options: &Options, log: &mut dyn FnMut(Level, &str)) {
    log(Level::Info, "aborting backup job");
    if let Err(e) = qmp::command_to_the_end(peer, "backup-cancel", None, None, options) {
        log(Level::Err, &e.eval_text());
    }
}

/// `query-proxmox-support`: which Proxmox backup features the running QEMU has. A QEMU
/// without the command has no Proxmox backup support at all
/// ([`Error::is_no_proxmox_support`]).
pub fn proxmox_support(peer: &Peer, options: &Options) -> Result<Value> {
    qmp::command(peer, "query-proxmox-support", None, None, options)
}

/// `query-pbs-bitmap-info`: per-drive dirty-bitmap use of the last PBS backup.
pub fn pbs_bitmap_info(peer: &Peer, options: &Options) -> Result<Value> {
    qmp::command(peer, "query-pbs-bitmap-info", None, None, options)
}

/// The job UUID of a `backup` reply; the seed's error when there is none.
fn job_uuid(reply: Value) -> Result<String> {
    match reply.get("UUID").and_then(Value::as_str) {
        Some(uuid) if !uuid.is_empty() => Ok(uuid.to_string()),
        _ => Err(Error::Backup("got no uuid for backup task".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uuid_is_taken_from_the_reply() {
        assert_eq!(job_uuid(json!({"UUID": "abc"})).unwrap(), "abc");
        for bad in [
            json!({}),
            json!({"UUID": ""}),
            json!({"UUID": 5}),
            json!(null),
        ] {
            assert_eq!(
                job_uuid(bad).unwrap_err().to_string(),
                "got no uuid for backup task"
            );
        }
    }
}
