//! Backup start, query and cancel.

use std::ffi::{c_char, c_void};

use super::args::{millis, null};
use super::boundary;
use super::callbacks::{vzdump_qemu_log_callback, Callbacks};
use super::qmp::vzdump_qemu_peer;
use super::result::*;
use crate::backup::{self, PbsParams, VmaParams};
use crate::loose;

/// Starts a VMA backup into `target_fd` (output file or compressor pipe write end):
/// `getfd` (name `backup`) and `backup` on one connection, within `budget_ms` (0: 30 s).
/// `params_json` is NULL or an object with optional `config-file`, `firewall-file`,
/// `devlist` (strings) and vzdump's `bwlimit` (KiB/s). On success `*out_uuid` gets the job
/// UUID. As the seed's `queue_execute(30)`, it makes no running check, and a failure reads
/// as the bare reason (QEMU's description, `got timeout`, ...). A `devlist` naming a device
/// twice or with an empty name is refused before anything is sent.
///
/// # Safety
/// Pointers are NULL or valid; strings NUL-terminated; `target_fd` open during the call.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_backup_start_vma(
    peer: *const vzdump_qemu_peer,
    target_fd: i32,
    params_json: *const c_char,
    budget_ms: u64,
    out_uuid: *mut *mut c_char,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let (out, peer, fd) = (out!(out_uuid), arg_ref!(peer), arg_fd!(target_fd));
        let params: VmaParams = match arg_json!(params_json) {
            Some(json) => loose::from_json(json)?,
            None => VmaParams::default(),
        };
        out.put_str(&backup::start_vma(
            &peer.peer,
            &peer.options,
            fd,
            &params,
            millis(budget_ms),
        )?);
        Ok(())
    })
}

/// Starts a backup to a Proxmox Backup Server, waiting up to `timeout_ms` (0: 125 s).
/// `params_json` holds the `backup` arguments by their QMP names, as today's qemu-server's
/// `archive_pbs` sends them (the members of the Rust type `PbsParams`): `backup-file` (the
/// repository), `backup-id` and `backup-time` are required; unknown keys are refused, and
/// a wrong value names its parameter, never the value. Passwords never appear in messages.
///
/// # Safety
/// Pointers are NULL or valid; strings NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_backup_start_pbs(
    peer: *const vzdump_qemu_peer,
    params_json: *const c_char,
    timeout_ms: u64,
    out_uuid: *mut *mut c_char,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let (out, peer) = (out!(out_uuid), arg_ref!(peer));
        let json = arg_json!(params_json).ok_or_else(|| null("params_json"))?;
        let params: PbsParams = loose::from_json(json)?;
        out.put_str(&backup::start_pbs(
            &peer.peer,
            &peer.options,
            &params,
            millis(timeout_ms),
        )?);
        Ok(())
    })
}

/// `query-backup` on its own connection; `*out_json` gets QEMU's reply object.
///
/// # Safety
/// Pointers are NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_backup_query(
    peer: *const vzdump_qemu_peer,
    out_json: *mut *mut c_char,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let (out, peer) = (out!(out_json), arg_ref!(peer));
        out.put_str(&backup::query_raw(&peer.peer, &peer.options)?.to_string());
        Ok(())
    })
}

/// `backup-cancel` on its own connection. Note QEMU's quirk: cancelling a job that already
/// ended `done` turns its status into `error` / `backup canceled`.
///
/// # Safety
/// Pointers are NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_backup_cancel(
    peer: *const vzdump_qemu_peer,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let peer = arg_ref!(peer);
        backup::cancel(&peer.peer, &peer.options)?;
        Ok(())
    })
}

/// qemu-server's `mon_backup_cancel`: logs `aborting backup job`, sends `backup-cancel` and
/// logs its failure at error level (`VZDUMP_QEMU_LOG_ERR`), never failing itself but on bad
/// arguments. Once called, the cancel runs to its end whatever signals arrive meanwhile,
/// within its timeout.
///
/// # Safety
/// Pointers are NULL or valid; `log_cb` valid with `userdata` during the call.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_backup_abort(
    peer: *const vzdump_qemu_peer,
    log_cb: vzdump_qemu_log_callback,
    userdata: *mut c_void,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let peer = arg_ref!(peer);
        log_cb.ok_or_else(|| null("log_cb"))?;
        // SAFETY: the caller passes a callback valid with `userdata` for this call.
        let cbs = unsafe { Callbacks::new(log_cb, None, userdata) };
        backup::abort_job(&peer.peer, &peer.options, &mut |level, line| {
            cbs.log_always(level, line)
        });
        Ok(())
    })
}
