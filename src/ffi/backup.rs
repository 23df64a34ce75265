//! Backup start, query and cancel.

use std::ffi::c_char;

use serde_json::Value;

use super::qmp::{fd_arg, handle, json_arg, vzdump_qemu_peer};
use super::result::*;
use super::{boundary, millis, need, put_string, Failure};
use crate::backup::{self, PbsParams, Secret, VmaParams};

/// Reads the parameter object's members, refusing unknown keys and wrong types.
struct Members {
    map: serde_json::Map<String, Value>,
}

impl Members {
    fn new(value: Option<Value>) -> Self {
        let map = match value {
            Some(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        Members { map }
    }

    fn bad(key: &str, expected: &str) -> Failure {
        Failure::new(
            VZDUMP_QEMU_INVALID_PARAMETER,
            format!("parameter '{key}' must be {expected}"),
        )
    }

    fn string(&mut self, key: &str) -> Result<Option<String>, Failure> {
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            // Perl hands numbers for ids: accept them as their decimal text.
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(Self::bad(key, "a string")),
        }
    }

    fn int(&mut self, key: &str) -> Result<Option<i64>, Failure> {
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| Self::bad(key, "an integer")),
            Some(Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| Self::bad(key, "an integer")),
            Some(_) => Err(Self::bad(key, "an integer")),
        }
    }

    fn bool(&mut self, key: &str) -> Result<Option<bool>, Failure> {
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            // Perl booleans are 0/1.
            Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(Some(false)),
            Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(Some(true)),
            Some(_) => Err(Self::bad(key, "a boolean")),
        }
    }

    fn required(&mut self, key: &str) -> Result<String, Failure> {
        self.string(key)?.ok_or_else(|| {
            Failure::new(
                VZDUMP_QEMU_INVALID_PARAMETER,
                format!("missing parameter '{key}'"),
            )
        })
    }

    fn done(self) -> Result<(), Failure> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(key) => Err(Failure::new(
                VZDUMP_QEMU_INVALID_PARAMETER,
                format!("unknown parameter '{key}'"),
            )),
        }
    }
}

/// Starts a VMA backup into `target_fd` (output file or compressor pipe write end):
/// `getfd` (name `backup`) and `backup` on one connection, within `budget_ms` (0: 30 s).
/// `params_json` is NULL or an object with optional `config-file`, `firewall-file`,
/// `devlist` (strings) and `bwlimit` (KiB/s). On success `*out_uuid` gets the job UUID.
/// As in the seed, an error reply of QEMU is reported with QEMU's bare description.
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
        let mut m = Members::new(unsafe { json_arg(params_json, "params_json") }?);
        let params = VmaParams {
            config_file: m.string("config-file")?,
            firewall_file: m.string("firewall-file")?,
            devlist: m.string("devlist")?,
            bwlimit_kib: match m.int("bwlimit")? {
                Some(v) if v < 0 => return Err(Members::bad("bwlimit", "0 or more")),
                v => v.map(|v| v as u64),
            },
        };
        m.done()?;
        let fd = fd_arg(target_fd, "target_fd")?;
        let uuid = backup::start_vma(&p.peer, &p.options, fd, &params, millis(budget_ms))?;
        // SAFETY: checked by need().
        unsafe { put_string(out_uuid, &uuid, "out_uuid") }
    })
}

/// Starts a backup to a Proxmox Backup Server, waiting up to `timeout_ms` (0: 125 s).
/// `params_json` holds the `backup` arguments by their QMP names: required `backup-file`
/// (repository), `backup-id`, `backup-time`; optional `password`, `fingerprint`,
/// `config-file`, `firewall-file`, `devlist`, `keyfile`, `key-password`, `master-keyfile`,
/// `backup-ns`, `encrypt`, `compress`, `use-dirty-bitmap`, `fleecing`, `max-workers`,
/// `speed`. Passwords never appear in messages.
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
        let mut m = Members::new(unsafe { json_arg(params_json, "params_json") }?);
        let params = PbsParams {
            repository: m.required("backup-file")?,
            backup_id: m.required("backup-id")?,
            backup_time: m.int("backup-time")?.ok_or_else(|| {
                Failure::new(
                    VZDUMP_QEMU_INVALID_PARAMETER,
                    "missing parameter 'backup-time'",
                )
            })?,
            password: m.string("password")?.map(Secret::new),
            fingerprint: m.string("fingerprint")?,
            config_file: m.string("config-file")?,
            firewall_file: m.string("firewall-file")?,
            devlist: m.string("devlist")?,
            keyfile: m.string("keyfile")?,
            key_password: m.string("key-password")?.map(Secret::new),
            master_keyfile: m.string("master-keyfile")?,
            encrypt: m.bool("encrypt")?,
            compress: m.bool("compress")?,
            backup_ns: m.string("backup-ns")?,
            use_dirty_bitmap: m.bool("use-dirty-bitmap")?,
            max_workers: m.int("max-workers")?,
            fleecing: m.bool("fleecing")?,
            speed: m.int("speed")?,
        };
        m.done()?;
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
