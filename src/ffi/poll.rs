//! The status-poll loop, with a log callback and a cancel check.

use std::cell::Cell;
use std::ffi::{c_char, c_void, CString};
use std::time::Duration;

use super::qmp::{handle, handle_mut, json_arg, vzdump_qemu_peer};
use super::result::*;
use super::strings::str_arg;
use super::{boundary, free_handle, need, put, put_string, Failure};
use crate::backup::abort_job;
use crate::error::Error;
use crate::log::Level;
use crate::progress::Poller;
use crate::progress::Style;

/// Log level of an informational line (`INFO:` in a vzdump task log).
pub const VZDUMP_QEMU_LOG_INFO: u32 = 0;
/// Log level of a warning (`WARN:`).
pub const VZDUMP_QEMU_LOG_WARN: u32 = 1;
/// Log level of an error (`ERROR:`).
pub const VZDUMP_QEMU_LOG_ERR: u32 = 2;
/// The 2020 seed's lines and texts (`status: 3% (…)`).
pub const VZDUMP_QEMU_STYLE_SEED: u32 = 0;
/// Today's qemu-server's lines and texts (`  3% (1.0 GiB of 32.0 GiB) …`).
pub const VZDUMP_QEMU_STYLE_CURRENT: u32 = 1;

/// Receives one log line (no prefix, no newline; valid during the call). Return 0 to go
/// on; non-zero stops the loop with `VZDUMP_QEMU_CANCELLED` (e.g. when a Perl callback died).
pub type vzdump_qemu_log_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, level: u32, line: *const c_char) -> u32>;

/// Asked at least every 100 ms while the loop runs: return true to stop it
/// (`VZDUMP_QEMU_CANCELLED`).
pub type vzdump_qemu_cancel_callback = Option<unsafe extern "C" fn(userdata: *mut c_void) -> bool>;

/// Hands one line to a log callback; returns the callback's answer.
///
/// # Safety
/// `log_cb` is valid with `userdata`.
pub(crate) unsafe fn deliver(
    log_cb: unsafe extern "C" fn(*mut c_void, u32, *const c_char) -> u32,
    userdata: *mut c_void,
    level: Level,
    line: &str,
) -> u32 {
    let level = match level {
        Level::Info => VZDUMP_QEMU_LOG_INFO,
        Level::Err => VZDUMP_QEMU_LOG_ERR,
    };
    let text = CString::new(line.replace('\0', " ")).expect("NULs replaced");
    // SAFETY: caller contract.
    unsafe { log_cb(userdata, level, text.as_ptr()) }
}

/// Reads a `VZDUMP_QEMU_STYLE_*` argument.
pub(crate) fn style_arg(style: u32) -> Result<Style, Failure> {
    match style {
        VZDUMP_QEMU_STYLE_SEED => Ok(Style::Seed),
        VZDUMP_QEMU_STYLE_CURRENT => Ok(Style::Current),
        other => Err(Failure::new(
            VZDUMP_QEMU_INVALID_PARAMETER,
            format!("style {other} is neither VZDUMP_QEMU_STYLE_SEED nor _CURRENT"),
        )),
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
        need(out, "out")?;
        // SAFETY: caller contract.
        let p = unsafe { handle(peer, "peer") }?;
        let uuid = unsafe { str_arg(job_uuid, "job_uuid") }?;
        let style = style_arg(style)?;
        let interval = (interval_ms != 0).then(|| Duration::from_millis(interval_ms));
        let poller = Poller::new(&p.peer, &p.options, uuid, style, interval);
        // SAFETY: checked by need().
        unsafe {
            put(
                out,
                Box::into_raw(Box::new(vzdump_qemu_poll { poller })),
                "out",
            )
        }
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
        // SAFETY: caller contract.
        let state = unsafe { handle_mut(poll, "poll") }?;
        let support = unsafe { json_arg(support_json, "support_json") }?.ok_or_else(|| {
            Failure::new(VZDUMP_QEMU_NULL_PARAMETER, "support_json must not be NULL")
        })?;
        state.poller.set_qemu_support(&support, is_template);
        Ok(())
    })
}

/// Runs (or, after `VZDUMP_QEMU_INTERRUPTED`, resumes) the loop until the job ends.
/// Returns OK when it is done, after logging the summary; `*out_progress_json` (may be
/// NULL) then gets `{"percent","transferred","total","target","zero","reused","duration"}`,
/// where in the current style `total` and `reused` are what today's loop returns (the last
/// non-zero total; the last `reused` read, `null` if QEMU reported none), in the seed style
/// the final reply's.
/// `VZDUMP_QEMU_POLL` carries the seed's die text (`got unexpected uuid`, the job's
/// errmsg or `unknown error`, `got unexpected status '<s>'`,
/// `got wrong number of transfered bytes (<a> != <b>)`). `VZDUMP_QEMU_CANCELLED` when
/// `log_cb` returned non-zero or `cancel_cb` true. With `cancel_on_error`, every failure
/// but `VZDUMP_QEMU_INTERRUPTED` first sends `backup-cancel`, logging
/// `aborting backup job` (and a cancel failure at error level), as the seed does.
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
        // SAFETY: caller contract.
        let state = unsafe { handle_mut(poll, "poll") }?;
        let log_cb = log_cb
            .ok_or_else(|| Failure::new(VZDUMP_QEMU_NULL_PARAMETER, "log_cb must not be NULL"))?;
        let stopped = Cell::new(false);
        let mut log = |level: Level, line: &str| {
            // SAFETY: caller contract for the callback and userdata.
            if !stopped.get() && unsafe { deliver(log_cb, userdata, level, line) } != 0 {
                stopped.set(true);
            }
        };
        let mut cancelled = || {
            // SAFETY: caller contract for the callback and userdata.
            stopped.get() || cancel_cb.is_some_and(|cb| unsafe { cb(userdata) })
        };
        let outcome = state.poller.run(&mut log, &mut cancelled);
        // A line whose callback asked to stop may have been the last one: still stop.
        let outcome = match outcome {
            Ok(_) if stopped.get() => Err(Error::Cancelled),
            other => other,
        };
        match outcome {
            Ok(done) => {
                if !out_progress_json.is_null() {
                    let p = done.progress;
                    let (total, reused) = match state.poller.style() {
                        // What today's loop returns.
                        Style::Current => (done.totals.total, done.totals.reused),
                        // The seed's returns nothing: the final reply's numbers.
                        Style::Seed => (p.total, Some(p.reused)),
                    };
                    let json = serde_json::json!({
                        "percent": p.percent, "transferred": p.transferred, "total": total,
                        "target": p.target, "zero": p.zero, "reused": reused,
                        "duration": p.duration,
                    });
                    // SAFETY: checked non-NULL.
                    unsafe { put_string(out_progress_json, &json.to_string(), "out") }?;
                }
                Ok(())
            }
            Err(e) => {
                if cancel_on_error && !e.is_interrupted() {
                    // The log callback may have asked to stop; cancelling must happen anyway.
                    stopped.set(false);
                    abort_job(state.poller.peer(), state.poller.options(), &mut log);
                }
                Err(e.into())
            }
        }
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
