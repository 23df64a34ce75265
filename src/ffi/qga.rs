//! The guest agent: raw commands and the seed's fs-freeze/thaw steps.

use std::ffi::{c_char, c_void};

use super::args::millis;
use super::boundary;
use super::callbacks::{vzdump_qemu_cancel_callback, vzdump_qemu_log_callback, Callbacks};
use super::qmp::{agent_of, vzdump_qemu_peer};
use super::result::*;
use crate::qga;

/// The agent's settings from the peer's.
fn agent_options(peer: &vzdump_qemu_peer) -> qga::Options {
    qga::Options::for_monitor(&peer.options)
}

/// Runs one guest-agent command on its own connection (flush, `guest-sync-delimited`,
/// command, close), as qemu-server does for `guest-*` commands, after its checks (a VM
/// peer must run, the socket file must exist). `timeout_ms` 0 uses qemu-server's timeout
/// for the command. `*out_json` gets the `return` value.
///
/// # Safety
/// Pointers are NULL or valid; strings NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_qga_command(
    peer: *const vzdump_qemu_peer,
    command: *const c_char,
    arguments_json: *const c_char,
    timeout_ms: u64,
    out_json: *mut *mut c_char,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let (out, peer) = (out!(out_json), arg_ref!(peer));
        let (command, args) = (arg_str!(command), arg_json!(arguments_json));
        let options = agent_options(peer);
        let value = qga::command(agent_of(peer)?, command, args, millis(timeout_ms), &options)?;
        out.put_str(&value.to_string());
        Ok(())
    })
}

/// The seed's `qga_fs_freeze`: checks the agent with `guest-ping` (3 s); if it does not
/// answer, logs `skipping guest-agent 'fs-freeze', agent configured but not running?` and
/// sets `*out_frozen` false; else logs `issuing guest-agent 'fs-freeze' command`, freezes
/// (a failure is logged at error level) and sets `*out_frozen` true: then always call
/// `vzdump_qemu_qga_fs_thaw` afterwards. Whether a freeze applies at all (agent
/// configured, backup mode, VM running) is the caller's decision.
///
/// If `log_cb` asked to stop, or `cancel_cb` (asked once the freeze step ran) returns
/// true, the step still ran to its end; a freeze that was issued is then thawed again at
/// once, without logging (the caller is stopping and could not thaw), and the result is
/// `VZDUMP_QEMU_CANCELLED`.
///
/// # Safety
/// Pointers are NULL or valid; the callbacks, if any, are valid with `userdata`.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_qga_fs_freeze(
    peer: *const vzdump_qemu_peer,
    log_cb: vzdump_qemu_log_callback,
    cancel_cb: vzdump_qemu_cancel_callback,
    userdata: *mut c_void,
    out_frozen: *mut bool,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let (out, peer) = (out!(out_frozen), arg_ref!(peer));
        // SAFETY: the caller passes callbacks valid with `userdata` for this call.
        let cbs = unsafe { Callbacks::new(log_cb, cancel_cb, userdata) };
        let frozen = qga::fs_freeze_unless_stopped(
            agent_of(peer)?,
            &agent_options(peer),
            &mut |level, line| cbs.log_always(level, line),
            &mut || cbs.cancelled(),
        )?;
        out.put(frozen);
        Ok(())
    })
}

/// The seed's `qga_fs_thaw`: logs `issuing guest-agent 'fs-thaw' command` and thaws; a
/// failure is logged at error level, never returned.
///
/// # Safety
/// Pointers are NULL or valid; the callback, if any, is valid with `userdata`.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_qga_fs_thaw(
    peer: *const vzdump_qemu_peer,
    log_cb: vzdump_qemu_log_callback,
    userdata: *mut c_void,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let peer = arg_ref!(peer);
        // SAFETY: the caller passes a callback valid with `userdata` for this call.
        let cbs = unsafe { Callbacks::new(log_cb, None, userdata) };
        qga::fs_thaw(agent_of(peer)?, &agent_options(peer), &mut |level, line| {
            cbs.log_always(level, line)
        });
        Ok(())
    })
}
