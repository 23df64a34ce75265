//! The guest agent: raw commands and the seed's fs-freeze/thaw steps.

use std::ffi::{c_char, c_void};

use super::poll::{deliver, vzdump_qemu_log_callback};
use super::qmp::{handle, json_arg, vzdump_qemu_peer};
use super::result::*;
use super::strings::str_arg;
use super::{boundary, millis, need, put, put_string, Failure};
use crate::log::Level;
use crate::qga;
use crate::qmp::Peer;

fn agent(p: &vzdump_qemu_peer) -> Result<&Peer, Failure> {
    p.agent.as_ref().ok_or_else(|| {
        Failure::new(
            VZDUMP_QEMU_INVALID_PARAMETER,
            "the peer has no guest agent socket: use vzdump_qemu_peer_set_agent_path",
        )
    })
}

/// The agent's settings from the peer's: connect timeout and style.
fn agent_options(p: &vzdump_qemu_peer) -> qga::Options {
    qga::Options {
        connect_timeout: p.options.connect_timeout,
        style: p.options.style,
        ..qga::Options::default()
    }
}

/// Calls `log_cb` (if any) with each line; its return value is ignored (each step is one
/// command).
fn sink(log_cb: vzdump_qemu_log_callback, userdata: *mut c_void) -> impl FnMut(Level, &str) {
    move |level, line| {
        if let Some(cb) = log_cb {
            // SAFETY: caller contract for the callback and userdata.
            unsafe { deliver(cb, userdata, level, line) };
        }
    }
}

/// Runs one guest-agent command on its own connection (flush, `guest-sync-delimited`,
/// command, close), as qemu-server does for `guest-*` commands. `timeout_ms` 0 uses
/// qemu-server's timeout for the command. `*out_json` gets the `return` value.
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
        need(out_json, "out_json")?;
        // SAFETY: caller contract for all pointers.
        let p = unsafe { handle(peer, "peer") }?;
        let command = unsafe { str_arg(command, "command") }?;
        let args = unsafe { json_arg(arguments_json, "arguments_json") }?;
        let options = agent_options(p);
        let value = qga::command(agent(p)?, command, args, millis(timeout_ms), &options)?;
        // SAFETY: checked by need().
        unsafe { put_string(out_json, &value.to_string(), "out_json") }
    })
}

/// The seed's `qga_fs_freeze`: checks the agent with `guest-ping` (3 s); if it does not
/// answer, logs `skipping guest-agent 'fs-freeze', agent configured but not running?` and
/// sets `*out_frozen` false; else logs `issuing guest-agent 'fs-freeze' command`, freezes
/// (a failure is logged at error level) and sets `*out_frozen` true: then always call
/// `vzdump_qemu_qga_fs_thaw` afterwards. Whether a freeze applies at all (agent
/// configured, backup mode, VM running) is the caller's decision.
///
/// # Safety
/// Pointers are NULL or valid; the callback, if any, is valid with `userdata`.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_qga_fs_freeze(
    peer: *const vzdump_qemu_peer,
    log_cb: vzdump_qemu_log_callback,
    userdata: *mut c_void,
    out_frozen: *mut bool,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        need(out_frozen, "out_frozen")?;
        // SAFETY: caller contract.
        let p = unsafe { handle(peer, "peer") }?;
        let frozen = qga::fs_freeze(agent(p)?, &agent_options(p), &mut sink(log_cb, userdata));
        // SAFETY: checked by need().
        unsafe { put(out_frozen, frozen, "out_frozen") }
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
        // SAFETY: caller contract.
        let p = unsafe { handle(peer, "peer") }?;
        qga::fs_thaw(agent(p)?, &agent_options(p), &mut sink(log_cb, userdata));
        Ok(())
    })
}
