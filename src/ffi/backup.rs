//! Backup start, query and cancel.

use std::ffi::c_char;

use super::qmp::{fd_arg, handle, json_arg, vzdump_qemu_peer};
use super::result::*;
use super::{boundary, millis, need, put_string, Failure};
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
        need(out_uuid, "out_uuid")?;
        // SAFETY: caller contract for all pointers.
        let p = unsafe { handle(peer, "peer") }?;
        let params: VmaParams = match unsafe { json_arg(params_json, "params_json") }? {
            Some(json) => loose::from_json(json)?,
            None => VmaParams::default(),
        };
        let fd = fd_arg(target_fd, "target_fd")?;
        let uuid = backup::start_vma(&p.peer, &p.options, fd, &params, millis(budget_ms))?;
        // SAFETY: checked by need().
        unsafe { put_string(out_uuid, &uuid, "out_uuid") }
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
        need(out_uuid, "out_uuid")?;
        // SAFETY: caller contract for all pointers.
        let p = unsafe { handle(peer, "peer") }?;
        let json = unsafe { json_arg(params_json, "params_json") }?.ok_or_else(|| {
            Failure::new(VZDUMP_QEMU_NULL_PARAMETER, "params_json must not be NULL")
        })?;
        let params: PbsParams = loose::from_json(json)?;
        let uuid = backup::start_pbs(&p.peer, &p.options, &params, millis(timeout_ms))?;
        // SAFETY: checked by need().
        unsafe { put_string(out_uuid, &uuid, "out_uuid") }
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
        need(out_json, "out_json")?;
        // SAFETY: caller contract.
        let p = unsafe { handle(peer, "peer") }?;
        let reply = backup::query_raw(&p.peer, &p.options)?;
        // SAFETY: checked by need().
        unsafe { put_string(out_json, &reply.to_string(), "out_json") }
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
        // SAFETY: caller contract.
        let p = unsafe { handle(peer, "peer") }?;
        backup::cancel(&p.peer, &p.options)?;
        Ok(())
    })
}
