//! The compressor behind a pipe.

use std::ffi::c_char;
use std::os::fd::IntoRawFd;
use std::time::Duration;

use super::qmp::{fd_arg, handle_mut};
use super::result::*;
use super::strings::str_arg;
use super::{boundary, free_handle, need, put, Failure};
use crate::compressor::{CommandSpec, Compressor, SpawnOptions};
use crate::error::Error;

/// A running compressor. Free it with `vzdump_qemu_compressor_free`, which kills and reaps
/// it if it still runs, so no zombie is left.
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
        need(out, "out")?;
        need(out_write_fd, "out_write_fd")?;
        // SAFETY: caller contract.
        let command = unsafe { str_arg(command, "command") }?;
        let output = fd_arg(output_fd, "output_fd")?;
        let mut options = SpawnOptions::default();
        if pipe_size != 0 {
            options.pipe_size = Some(pipe_size);
        }
        let spec = CommandSpec::Line(command.to_string());
        let (child, write_end) = Compressor::spawn(&spec, output, &options).map_err(Error::from)?;
        let handle = Box::new(vzdump_qemu_compressor { child: Some(child) });
        // SAFETY: both checked by need().
        unsafe {
            put(out_write_fd, write_end.into_raw_fd(), "out_write_fd")?;
            put(out, Box::into_raw(handle), "out")
        }
    })
}

/// The compressor's process id; -1 for NULL or a compressor already reaped.
///
/// # Safety
/// `c` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_compressor_pid(c: *const vzdump_qemu_compressor) -> i32 {
    // SAFETY: caller contract.
    match unsafe { c.as_ref() }.and_then(|c| c.child.as_ref()) {
        Some(child) => child.pid(),
        None => -1,
    }
}

/// Waits up to `timeout_ms` (0: 10 minutes) for the compressor to exit. OK on exit code
/// 0; `VZDUMP_QEMU_COMPRESSOR` with `<command> failed - wrong exit status <n>` (plus
/// ` (signal <n>)`); `VZDUMP_QEMU_TIMEOUT` or `VZDUMP_QEMU_INTERRUPTED` leave it running
/// (wait again, or kill it).
///
/// # Safety
/// `c` is NULL or a live handle used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_compressor_wait(
    c: *mut vzdump_qemu_compressor,
    timeout_ms: u64,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        // SAFETY: caller contract.
        let handle = unsafe { handle_mut(c, "compressor") }?;
        let child = handle.child.as_mut().ok_or_else(reaped)?;
        let timeout = match timeout_ms {
            0 => DEFAULT_WAIT,
            ms => Duration::from_millis(ms),
        };
        let outcome = child.wait(timeout).map_err(Error::from);
        if !outcome
            .as_ref()
            .is_err_and(|e| e.is_interrupted() || e.is_timeout())
        {
            handle.child = None; // exited and reaped, well or not
        }
        Ok(outcome?)
    })
}

/// Kills the compressor (SIGKILL) and reaps it: the error path.
///
/// # Safety
/// `c` is NULL or a live handle used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_compressor_kill(
    c: *mut vzdump_qemu_compressor,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        // SAFETY: caller contract.
        let handle = unsafe { handle_mut(c, "compressor") }?;
        let child = handle.child.take().ok_or_else(reaped)?;
        child.kill_and_reap().map_err(Error::from)?;
        Ok(())
    })
}

/// Frees the handle, killing and reaping a compressor that still runs. NULL is ignored.
///
/// # Safety
/// `c` is NULL or a live handle, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_compressor_free(c: *mut vzdump_qemu_compressor) {
    // SAFETY: caller contract; the constructors make handles with Box::into_raw.
    unsafe { free_handle(c) }
}

fn reaped() -> Failure {
    Failure::new(
        VZDUMP_QEMU_INVALID_PARAMETER,
        "the compressor was already waited for or killed",
    )
}
