//! The whole backup job as a handle: create it with the parameters, run it with the
//! caller's callbacks, read its record, free it.

use std::ffi::{c_char, c_void};

use super::callbacks::{
    vzdump_qemu_cancel_callback, vzdump_qemu_log_callback, vzdump_qemu_vm_callback, VmHost,
};
use super::poll::progress_json;
use super::qmp::vzdump_qemu_peer;
use super::result::*;
use super::{boundary, free_handle};
use crate::job::{self, Finished, PbsJob, VmaJob};
use crate::loose;
use crate::qmp::{Options, Peer};

enum Format {
    Vma(VmaJob),
    Pbs(Box<PbsJob>),
}

/// A backup job of one VM: its parameters, and once it ran well, its record.
pub struct vzdump_qemu_job {
    peer: Peer,
    options: Options,
    format: Format,
    finished: Option<Finished>,
}

/// Creates a VMA backup job (qemu-server's `archive_vma`) of the VM `peer`, which must be
/// given by VM id (`vzdump_qemu_peer_new_vmid`); its style (`vzdump_qemu_peer_set_style`) picks
/// the seed's flow or today's. `job_json`:
/// `{"task": {...}, "output-file": "<path>" | "output-fd": <fd>, "compressor": "<command>"}`
/// with `task` = `{"disks": [{"type": "file"|"block", "qmdevice": "drive-scsi0"}, ...],
/// "config-file", "firewall-file", "mode": "snapshot"|"suspend"|"stop", "vm-was-running",
/// "vm-was-paused", "agent", "guest-fsfreeze", "is-template", "vm-stop-time", "bwlimit",
/// "max-workers"}` (the Rust types `VmaJob` and `Task`; unknown keys are refused). An
/// `output-fd` must stay open until the job ran.
///
/// # Safety
/// Pointers are NULL or valid; `job_json` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_job_new_vma(
    peer: *const vzdump_qemu_peer,
    job_json: *const c_char,
    out: *mut *mut vzdump_qemu_job,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    // SAFETY: the caller's pointers, as documented.
    unsafe {
        new_job(peer, job_json, out, error, |json| {
            Ok(Format::Vma(loose::from_json(json)?))
        })
    }
}

/// Creates a Proxmox Backup Server job (qemu-server's `archive_pbs`), as
/// `vzdump_qemu_job_new_vma`. `job_json`: `{"task": {...}, "pbs": {...}}` with `pbs` the
/// server side of the `backup` arguments by their QMP names (`backup-file`, `backup-id`,
/// `backup-time`, `password`, `fingerprint`, `keyfile`, `master-keyfile`, `backup-ns`, ...;
/// the job adds `devlist`, `config-file`, `firewall-file`, `speed`, `max-workers`,
/// `encrypt` and `use-dirty-bitmap`). Passwords never appear in messages.
///
/// # Safety
/// Pointers are NULL or valid; `job_json` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_job_new_pbs(
    peer: *const vzdump_qemu_peer,
    job_json: *const c_char,
    out: *mut *mut vzdump_qemu_job,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    // SAFETY: the caller's pointers, as documented.
    unsafe {
        new_job(peer, job_json, out, error, |json| {
            Ok(Format::Pbs(Box::new(loose::from_json(json)?)))
        })
    }
}

/// Both constructors: the peer and the JSON checked, the parameters read by `format`.
///
/// # Safety
/// As the constructors'.
unsafe fn new_job(
    peer: *const vzdump_qemu_peer,
    job_json: *const c_char,
    out: *mut *mut vzdump_qemu_job,
    error: *mut *mut c_char,
    format: impl FnOnce(serde_json::Value) -> crate::Result<Format>,
) -> vzdump_qemu_result {
    boundary(error, || {
        let (out, peer) = (out!(out), arg_ref!(peer));
        let json = arg_json!(job_json).ok_or_else(|| super::args::null("job_json"))?;
        let format = format(json)?;
        out.put(Box::into_raw(Box::new(vzdump_qemu_job {
            peer: peer.peer.clone(),
            options: peer.options.clone(),
            format,
            finished: None,
        })));
        Ok(())
    })
}

/// Runs the job, in this order (the seed's `archive_vma` / `archive_pbs`; today's style
/// differs as the Rust module `job` documents):
/// 1. the devlist from the task's disks;
/// 2. if the VM does not run: `starting kvm to execute backup task` and `start_cb`;
/// 3. from here a signal that interrupts a wait (unless the peer's signal check,
///    `vzdump_qemu_peer_set_signal_check`, lets it go on), a non-zero return of `log_cb` or
///    `cancel_cb` returning true ends the job with `interrupted by signal`
///    (`VZDUMP_QEMU_INTERRUPTED`);
/// 4. VMA: the output file and the compressor behind a pipe;
/// 5. the guest freeze if asked (agent configured, not stop mode, VM was running);
/// 6. the backup start (VMA 30 s for `getfd` and `backup`; PBS 60 s, today 125 s);
/// 7. the thaw if a freeze was issued, before a start failure is passed on;
/// 8. VMA: the pipe's write end closed; `got no uuid for backup task`;
/// 9. `started backup task '<uuid>'`;
/// 10. the VM resumed if it was running (`resuming VM again[ after <n> seconds]`, `cont`);
/// 11. the status-poll loop;
/// 12. on a failure of 3 to 11: the error logged, the job cancelled (`aborting backup
///     job`) if it started (today always, and the VM resumed again); the cancel, that
///     resume and the status query of 13 run to their end whatever signals arrive;
/// 13. the power state restored: a VM started in 2 and still in `prelaunch` is stopped
///     with `stop_cb` (`stopping kvm after backup task`); failures are warnings;
/// 14. VMA: the compressor killed on failure, else waited for (`<command> failed - wrong
///     exit status <n>`).
///
/// Returns OK when the backup is done (`vzdump_qemu_job_result_json` then has its record),
/// else the failure's code and text (the one logged in 12; also in
/// `vzdump_qemu_last_error_json`). `log_cb`, `start_cb` and `stop_cb` are required.
///
/// # Safety
/// `job` is NULL or live; the callbacks are NULL or valid with `userdata` during the call.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_job_run(
    job: *mut vzdump_qemu_job,
    log_cb: vzdump_qemu_log_callback,
    start_cb: vzdump_qemu_vm_callback,
    stop_cb: vzdump_qemu_vm_callback,
    cancel_cb: vzdump_qemu_cancel_callback,
    userdata: *mut c_void,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let job = arg_mut!(job);
        let (Some(_), Some(start), Some(stop)) = (log_cb, start_cb, stop_cb) else {
            let name = match (log_cb, start_cb) {
                (None, _) => "log_cb",
                (_, None) => "start_cb",
                _ => "stop_cb",
            };
            return Err(super::args::null(name));
        };
        // SAFETY: the caller passes callbacks valid with `userdata` for this call.
        let host = unsafe { VmHost::new(log_cb, Some(start), Some(stop), cancel_cb, userdata) };
        job.finished = None;
        let finished = match &job.format {
            Format::Vma(vma) => job::run_vma(&job.peer, &job.options, vma, &host),
            Format::Pbs(pbs) => job::run_pbs(&job.peer, &job.options, pbs, &host),
        };
        job.finished = Some(finished?);
        Ok(())
    })
}

/// The record of a job that ran well: `{"uuid": "<job uuid>", "progress": {...}}` with
/// `progress` as `vzdump_qemu_poll_run` gives it (`total` is qemu-server's
/// `$task->{size}`). `VZDUMP_QEMU_INVALID_PARAMETER` before a successful run.
///
/// # Safety
/// `job` is NULL or live; `out_json` and `error` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_job_result_json(
    job: *const vzdump_qemu_job,
    out_json: *mut *mut c_char,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let (out, job) = (out!(out_json), arg_ref!(job));
        let done = job.finished.as_ref().ok_or_else(|| {
            super::args::invalid("the job has not run to its end (vzdump_qemu_job_run)")
        })?;
        let record = serde_json::json!({
            "uuid": done.uuid,
            "progress": progress_json(job.options.style, &done.progress),
        });
        out.put_str(&record.to_string());
        Ok(())
    })
}

/// Frees a job. NULL is ignored.
///
/// # Safety
/// `job` is NULL or a live handle, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_job_free(job: *mut vzdump_qemu_job) {
    // SAFETY: caller contract; the constructors make handles with Box::into_raw.
    unsafe { free_handle(job) }
}
