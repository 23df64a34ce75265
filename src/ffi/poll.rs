//! The status-poll loop, with a log callback and a cancel check.

use std::ffi::{c_char, c_void};

use super::args::{invalid, millis, null};
use super::callbacks::{vzdump_qemu_cancel_callback, vzdump_qemu_log_callback, Callbacks};
use super::qmp::vzdump_qemu_peer;
use super::result::*;
use super::{boundary, free_handle, Failure};
use crate::backup::abort_job;
use crate::error::Error;
use crate::progress::{Poller, Style};

/// The 2020 seed's lines and texts (`status: 3% (…)`).
pub const VZDUMP_QEMU_STYLE_SEED: u32 = 0;
/// Today's qemu-server's lines and texts (`  3% (1.0 GiB of 32.0 GiB) …`).
pub const VZDUMP_QEMU_STYLE_CURRENT: u32 = 1;

/// Reads a `VZDUMP_QEMU_STYLE_*` argument.
pub(crate) fn style_arg(style: u32) -> Result<Style, Failure> {
    match style {
        VZDUMP_QEMU_STYLE_SEED => Ok(Style::Seed),
        VZDUMP_QEMU_STYLE_CURRENT => Ok(Style::Current),
        other => Err(invalid(format!(
            "style {other} is neither VZDUMP_QEMU_STYLE_SEED nor _CURRENT"
        ))),
    }
}

/// The state of one job's status-poll loop (start time, last printed line).
pub struct vzdump_qemu_poll {
    poller: Poller,
}

/// Prepares the loop for job `job_uuid` (style `VZDUMP_QEMU_STYLE_*`); its clock starts
/// now. `interval_ms` is the steady-state time between queries, 0 for 1 s.
///
/// # Safety
/// Pointers are NULL or valid; `job_uuid` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_poll_new(
    peer: *const vzdump_qemu_peer,
    job_uuid: *const c_char,
    style: u32,
    interval_ms: u64,
    out: *mut *mut vzdump_qemu_poll,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let (out, peer, job_uuid) = (out!(out), arg_ref!(peer), arg_str!(job_uuid));
        let style = style_arg(style)?;
        let poller = Poller::new(
            &peer.peer,
            &peer.options,
            job_uuid,
            style,
            millis(interval_ms),
        );
        out.put(Box::into_raw(Box::new(vzdump_qemu_poll { poller })));
        Ok(())
    })
}

/// Gives today's loop (`VZDUMP_QEMU_STYLE_CURRENT`) the `query-proxmox-support` reply of
/// the backup's QEMU, as today's `archive_pbs` does (a VMA backup passes none): when it
/// says `query-bitmap-info`, the first `vzdump_qemu_poll_run` queries
/// `query-pbs-bitmap-info` and logs the dirty-bitmap lines before polling (per drive unless
/// `is_template`), and the dirty bytes become the percent base. The seed style ignores it.
/// Call it before the first run.
///
/// # Safety
/// `poll` is NULL or live; `support_json` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_poll_set_qemu_support(
    poll: *mut vzdump_qemu_poll,
    support_json: *const c_char,
    is_template: bool,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let poll = arg_mut!(poll);
        let support = arg_json!(support_json).ok_or_else(|| null("support_json"))?;
        poll.poller.set_qemu_support(&support, is_template);
        Ok(())
    })
}

/// Runs the loop until the job ends. Returns OK when it is done, after logging the summary;
/// `*out_progress_json` (may be NULL) then gets
/// `{"percent","transferred","total","target","zero","reused","duration"}`, where in the
/// current style `total` and `reused` are what today's loop returns (the last non-zero
/// total; the last `reused` read, `null` if QEMU reported none), in the seed style the
/// final reply's. `VZDUMP_QEMU_POLL` carries the seed's die text (`got unexpected uuid`,
/// the job's errmsg or `unknown error`, `got unexpected status '<s>'`,
/// `got wrong number of transfered bytes (<a> != <b>)`); a failed query carries
/// qemu-server's text of it. `VZDUMP_QEMU_CANCELLED` when `log_cb` returned non-zero or
/// `cancel_cb` true.
///
/// A signal: with `cancel_cb`, it is asked at once and the loop goes on unless it returns
/// true; without, the loop returns `VZDUMP_QEMU_INTERRUPTED` and a later call resumes it.
/// With `cancel_on_error`, every failure but `VZDUMP_QEMU_INTERRUPTED` first sends
/// `backup-cancel`, logging `aborting backup job` (and a cancel failure at error level),
/// as the seed does; not when the job ended `done` and only the log callback asked to
/// stop on a last line (`VZDUMP_QEMU_CANCELLED`, the backup is good).
///
/// # Safety
/// `poll` is NULL or live; the callbacks are NULL or valid with `userdata`.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_poll_run(
    poll: *mut vzdump_qemu_poll,
    log_cb: vzdump_qemu_log_callback,
    cancel_cb: vzdump_qemu_cancel_callback,
    userdata: *mut c_void,
    cancel_on_error: bool,
    out_progress_json: *mut *mut c_char,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let (out, poll) = (opt_out!(out_progress_json), arg_mut!(poll));
        if log_cb.is_none() {
            return Err(null("log_cb"));
        }
        // SAFETY: the caller passes callbacks valid with `userdata` for this call.
        let cbs = unsafe { Callbacks::new(log_cb, cancel_cb, userdata) };
        poll.poller.set_resume_on_signal(cbs.resume_on_signal());
        let outcome = poll
            .poller
            .run(&mut |level, line| cbs.log(level, line), &mut || {
                cbs.cancelled()
            });
        // A line whose callback asked to stop may have been the last one: still stop, but
        // the job ended `done` and is not cancelled (QEMU would turn it into an error).
        let job_done = outcome.is_ok();
        let outcome = match outcome {
            Ok(_) if cbs.log_stopped() => Err(Error::Cancelled),
            other => other,
        };
        match outcome {
            Ok(done) => {
                if let Some(out) = out {
                    out.put_str(&progress_json(poll.poller.style(), &done).to_string());
                }
                Ok(())
            }
            Err(e) => {
                if cancel_on_error && !e.is_interrupted() && !job_done {
                    // The log callback may have asked to stop; cancelling must happen anyway.
                    cbs.resume_logging();
                    let (peer, options) = (poll.poller.peer(), poll.poller.options());
                    abort_job(peer, options, &mut |level, line| cbs.log(level, line));
                }
                Err(e.into())
            }
        }
    })
}

/// The result of a finished loop, as `vzdump_qemu_poll_run` documents it.
pub(crate) fn progress_json(style: Style, done: &crate::progress::Completed) -> serde_json::Value {
    let p = done.progress;
    let (total, reused) = match style {
        // What today's loop returns.
        Style::Current => (done.totals.total, done.totals.reused),
        // The seed's returns nothing: the final reply's numbers.
        Style::Seed => (p.total, Some(p.reused)),
    };
    serde_json::json!({
        "percent": p.percent, "transferred": p.transferred, "total": total,
        "target": p.target, "zero": p.zero, "reused": reused, "duration": p.duration,
    })
}

/// Frees the loop state. NULL is ignored.
///
/// # Safety
/// `poll` is NULL or a live handle, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_poll_free(poll: *mut vzdump_qemu_poll) {
    // SAFETY: caller contract; the constructors make handles with Box::into_raw.
    unsafe { free_handle(poll) }
}
