//! The compressor behind a pipe.

use std::ffi::{c_char, c_void};
use std::os::fd::IntoRawFd;
use std::time::Duration;

use super::args::invalid;
use super::callbacks::{vzdump_qemu_cancel_callback, Callbacks};
use super::result::*;
use super::{boundary, free_handle, Failure};
use crate::compressor::{CommandSpec, Compressor, SpawnOptions};
use crate::error::Error;

/// A running compressor. Free it with `vzdump_qemu_compressor_free`, which kills and reaps
/// it if it still runs, so no zombie is left; in a process forked from the one that
/// spawned it, the free leaves the compressor alone (only its parent can reap it).
pub struct vzdump_qemu_compressor {
    child: Option<Compressor>,
}

/// How long `vzdump_qemu_compressor_wait` waits when given 0.
const DEFAULT_WAIT: Duration = Duration::from_secs(600);

/// Spawns `command` (Perl `exec STRING` semantics: through `/bin/sh -c` when it has shell
/// metacharacters, else split on whitespace and found in PATH) with stdin the read end of
/// a new pipe and stdout `output_fd`, without forking the caller. `*out_write_fd` gets the
/// pipe's write end (close-on-exec), which the caller owns and closes once QEMU has its
/// copy. `pipe_size` 0 takes the library default (1 MiB). An exec failure is reported
/// here: `fork compressor '<command>' failed: <reason>`.
///
/// # Safety
/// Pointers are NULL or valid; `command` NUL-terminated; `output_fd` open during the call.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_compressor_spawn(
    command: *const c_char,
    output_fd: i32,
    pipe_size: usize,
    out: *mut *mut vzdump_qemu_compressor,
    out_write_fd: *mut i32,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let (out, out_write_fd) = (out!(out), out!(out_write_fd));
        let (command, output) = (arg_str!(command), arg_fd!(output_fd));
        let options = SpawnOptions {
            pipe_size: (pipe_size != 0).then_some(pipe_size),
        };
        let spec = CommandSpec::Line(command.to_string());
        let (child, write_end) = Compressor::spawn(&spec, output, &options).map_err(Error::from)?;
        out_write_fd.put(write_end.into_raw_fd());
        out.put(Box::into_raw(Box::new(vzdump_qemu_compressor {
            child: Some(child),
        })));
        Ok(())
    })
}

/// The compressor's process id; -1 for NULL or a compressor already reaped.
///
/// # Safety
/// `compressor` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_compressor_pid(
    compressor: *const vzdump_qemu_compressor,
) -> i32 {
    // SAFETY: caller contract.
    match unsafe { compressor.as_ref() }.and_then(|c| c.child.as_ref()) {
        Some(child) => child.pid(),
        None => -1,
    }
}

/// Waits up to `timeout_ms` (0: 10 minutes) for the compressor to exit. OK on exit code
/// 0; `VZDUMP_QEMU_COMPRESSOR` with `<command> failed - wrong exit status <n>` (plus
/// ` (signal <n>)`); `VZDUMP_QEMU_TIMEOUT` leaves it running (wait again, or kill it). A
/// signal: with `cancel_cb` it is asked at once and the wait goes on unless it returns
/// true (`VZDUMP_QEMU_INTERRUPTED` then), as Perl's `waitpid` does after a handler
/// returned; without, `VZDUMP_QEMU_INTERRUPTED`. The compressor keeps running in both.
///
/// # Safety
/// `compressor` is NULL or a live handle used by no other thread; `cancel_cb` NULL or
/// valid with `userdata`.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_compressor_wait(
    compressor: *mut vzdump_qemu_compressor,
    timeout_ms: u64,
    cancel_cb: vzdump_qemu_cancel_callback,
    userdata: *mut c_void,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let handle = arg_mut!(compressor);
        let child = handle.child.as_mut().ok_or_else(reaped)?;
        let timeout = match timeout_ms {
            0 => DEFAULT_WAIT,
            ms => Duration::from_millis(ms),
        };
        // SAFETY: the caller passes a callback valid with `userdata` for this call.
        let cbs = unsafe { Callbacks::new(None, cancel_cb, userdata) };
        let outcome = match cancel_cb {
            Some(_) => child.wait_resuming(timeout, &mut || cbs.cancelled()),
            None => child.wait(timeout),
        };
        // Exited and reaped, well or not (not: still running, or not this process's child).
        let gone = match &outcome {
            Ok(()) => true,
            Err(e) => !(e.is_interrupted() || e.is_timeout() || e.is_foreign()),
        };
        if gone {
            handle.child = None;
        }
        Ok(outcome.map_err(Error::from)?)
    })
}

/// Kills the compressor (SIGKILL) and reaps it: the error path.
///
/// # Safety
/// `compressor` is NULL or a live handle used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_compressor_kill(
    compressor: *mut vzdump_qemu_compressor,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let handle = arg_mut!(compressor);
        let child = handle.child.take().ok_or_else(reaped)?;
        child.kill_and_reap().map_err(Error::from)?;
        Ok(())
    })
}

/// Frees the handle, killing and reaping a compressor that still runs (in the process
/// that spawned it). NULL is ignored.
///
/// # Safety
/// `compressor` is NULL or a live handle, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_compressor_free(compressor: *mut vzdump_qemu_compressor) {
    // SAFETY: caller contract; the constructors make handles with Box::into_raw.
    unsafe { free_handle(compressor) }
}

fn reaped() -> Failure {
    invalid("the compressor was already waited for or killed")
}
