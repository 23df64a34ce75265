//! QMP peers, one-shot commands and open connections.

use std::ffi::c_char;
use std::os::fd::BorrowedFd;
use std::path::Path;

use serde_json::Value;

use super::result::*;
use super::strings::{opt_str_arg, str_arg};
use super::{boundary, free_handle, millis, need, put, put_string, Failure};
use crate::qmp::{self, Options, Peer, Qmp};

/// Where a monitor socket is, plus connection settings. Create with
/// `vzdump_qemu_peer_new_vmid` or `vzdump_qemu_peer_new_path`; free with
/// `vzdump_qemu_peer_free`. Immutable after creation but for the setters.
pub struct vzdump_qemu_peer {
    pub(crate) peer: Peer,
    pub(crate) options: Options,
    /// The guest agent's socket: `<run_dir>/<vmid>.qga` for a VM, else as set.
    pub(crate) agent: Option<Peer>,
}

/// An open QMP connection. It blocks every other client of the monitor until freed, so
/// free it as soon as the operation is done.
pub struct vzdump_qemu_conn {
    qmp: Qmp,
}

/// Checks and borrows a handle.
///
/// # Safety
/// `p` is NULL or a live handle of type `T` made by this library.
pub(crate) unsafe fn handle<'a, T>(p: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: caller contract.
    unsafe { p.as_ref() }.ok_or_else(|| {
        Failure::new(
            VZDUMP_QEMU_NULL_PARAMETER,
            format!("{name} must not be NULL"),
        )
    })
}

/// Checks and mutably borrows a handle.
///
/// # Safety
/// As [`handle`], and no other reference to it is alive.
pub(crate) unsafe fn handle_mut<'a, T>(p: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: caller contract.
    unsafe { p.as_mut() }.ok_or_else(|| {
        Failure::new(
            VZDUMP_QEMU_NULL_PARAMETER,
            format!("{name} must not be NULL"),
        )
    })
}

/// Parses optional JSON arguments (NULL = none); they must be an object.
///
/// # Safety
/// `json` is NULL or NUL-terminated.
pub(crate) unsafe fn json_arg(json: *const c_char, name: &str) -> Result<Option<Value>, Failure> {
    // SAFETY: caller contract.
    let Some(text) = (unsafe { opt_str_arg(json, name) })? else {
        return Ok(None);
    };
    // serde_json's messages give line and column, never the input (it may hold a password).
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Failure::new(
            VZDUMP_QEMU_INVALID_PARAMETER,
            format!("{name} is not valid JSON: {e}"),
        )
    })?;
    if !value.is_object() {
        return Err(Failure::new(
            VZDUMP_QEMU_INVALID_PARAMETER,
            format!("{name} must be a JSON object"),
        ));
    }
    Ok(Some(value))
}

/// Checks a file descriptor argument.
pub(crate) fn fd_arg<'a>(fd: i32, name: &str) -> Result<BorrowedFd<'a>, Failure> {
    // SAFETY: F_GETFD only queries the descriptor table.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(Failure::new(
            VZDUMP_QEMU_INVALID_PARAMETER,
            format!("{name} {fd} is not an open file descriptor"),
        ));
    }
    // SAFETY: checked open; the caller keeps it open for the duration of the call.
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// A peer for VM `vmid`: socket `<run_dir>/<vmid>.qmp`, `run_dir` NULL meaning
/// `/var/run/qemu-server`. Messages name it as qemu-server does (`VM 100 qmp`).
///
/// # Safety
/// `run_dir` is NULL or NUL-terminated; `out` and `error` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_peer_new_vmid(
    vmid: u32,
    run_dir: *const c_char,
    out: *mut *mut vzdump_qemu_peer,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        need(out, "out")?;
        // SAFETY: caller contract.
        let dir = unsafe { opt_str_arg(run_dir, "run_dir") }?.unwrap_or(qmp::DEFAULT_RUN_DIR);
        let handle = vzdump_qemu_peer {
            peer: Peer::vmid_in(vmid, Path::new(dir)),
            options: Options::default(),
            agent: Some(Peer::qga_vmid_in(vmid, Path::new(dir))),
        };
        // SAFETY: checked by need().
        unsafe { put(out, Box::into_raw(Box::new(handle)), "out") }
    })
}

/// A peer for the QMP socket at `path`.
///
/// # Safety
/// `path` is NUL-terminated; `out` and `error` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_peer_new_path(
    path: *const c_char,
    out: *mut *mut vzdump_qemu_peer,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        need(out, "out")?;
        // SAFETY: caller contract.
        let path = unsafe { str_arg(path, "path") }?;
        let handle = vzdump_qemu_peer {
            peer: Peer::path(path),
            options: Options::default(),
            agent: None,
        };
        // SAFETY: checked by need().
        unsafe { put(out, Box::into_raw(Box::new(handle)), "out") }
    })
}

/// Sets the connect and handshake timeouts in milliseconds (0 keeps the default, 5 s).
///
/// # Safety
/// `peer` is NULL or a live peer handle not used by another thread.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_peer_set_timeouts(
    peer: *mut vzdump_qemu_peer,
    connect_ms: u64,
    handshake_ms: u64,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        // SAFETY: caller contract.
        let p = unsafe { handle_mut(peer, "peer") }?;
        if let Some(d) = millis(connect_ms) {
            p.options.connect_timeout = d;
        }
        if let Some(d) = millis(handshake_ms) {
            p.options.handshake_timeout = d;
        }
        Ok(())
    })
}

/// Sets whose failure texts the peer's calls print: `VZDUMP_QEMU_STYLE_SEED` (the
/// default: the 2020 seed's client, e.g. `received responsed without command id`, agent
/// commands named `VM 100 qmp command`) or `VZDUMP_QEMU_STYLE_CURRENT` (today's
/// qemu-server, `VM 100 qga command`). A status loop uses its own style instead.
///
/// # Safety
/// `peer` is NULL or a live peer handle not used by another thread.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_peer_set_style(
    peer: *mut vzdump_qemu_peer,
    style: u32,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        // SAFETY: caller contract.
        let p = unsafe { handle_mut(peer, "peer") }?;
        p.options.style = super::poll::style_arg(style)?;
        Ok(())
    })
}

/// Sets the guest agent's socket of a peer given by path (a VM peer has
/// `<run_dir>/<vmid>.qga` already).
///
/// # Safety
/// `peer` is NULL or a live peer handle not used by another thread; `path` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_peer_set_agent_path(
    peer: *mut vzdump_qemu_peer,
    path: *const c_char,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        // SAFETY: caller contract.
        let p = unsafe { handle_mut(peer, "peer") }?;
        let path = unsafe { str_arg(path, "path") }?;
        p.agent = Some(Peer::qga_path(path));
        Ok(())
    })
}

/// Frees a peer. NULL is ignored.
///
/// # Safety
/// `peer` is NULL or a live peer handle, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_peer_free(peer: *mut vzdump_qemu_peer) {
    // SAFETY: caller contract; the constructors make handles with Box::into_raw.
    unsafe { free_handle(peer) }
}

/// Runs one command on its own connection (connect, negotiate, execute, close), as
/// qemu-server's `mon_cmd`. `arguments_json` is a JSON object or NULL; `timeout_ms` 0 uses
/// qemu-server's timeout for the command. On success `*out_json` receives the `return`
/// value as JSON (free with `vzdump_qemu_string_free`).
///
/// # Safety
/// Pointers are NULL or valid as documented; strings NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_command(
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
        let value = qmp::command(&p.peer, command, args, millis(timeout_ms), &p.options)?;
        // SAFETY: checked by need().
        unsafe { put_string(out_json, &value.to_string(), "out_json") }
    })
}

/// Opens a connection and negotiates capabilities. Only for callers that own the
/// monitor: QEMU serves nobody else until `vzdump_qemu_conn_free`.
///
/// # Safety
/// `peer` is NULL or live; `out` and `error` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_conn_open(
    peer: *const vzdump_qemu_peer,
    out: *mut *mut vzdump_qemu_conn,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        need(out, "out")?;
        // SAFETY: caller contract.
        let p = unsafe { handle(peer, "peer") }?;
        let qmp = Qmp::connect(&p.peer, &p.options)?;
        // SAFETY: checked by need().
        unsafe {
            put(
                out,
                Box::into_raw(Box::new(vzdump_qemu_conn { qmp })),
                "out",
            )
        }
    })
}

/// Runs a command on an open connection; see `vzdump_qemu_command`. With `fd` >= 0 the
/// descriptor is passed along by SCM_RIGHTS (for `getfd` and `add-fd`); -1 sends none.
///
/// # Safety
/// Pointers are NULL or valid as documented; strings NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_conn_execute(
    conn: *mut vzdump_qemu_conn,
    command: *const c_char,
    arguments_json: *const c_char,
    fd: i32,
    timeout_ms: u64,
    out_json: *mut *mut c_char,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        need(out_json, "out_json")?;
        // SAFETY: caller contract for all pointers.
        let c = unsafe { handle_mut(conn, "conn") }?;
        let command = unsafe { str_arg(command, "command") }?;
        let args = unsafe { json_arg(arguments_json, "arguments_json") }?;
        let value = if fd == -1 {
            c.qmp.execute(command, args, millis(timeout_ms))?
        } else {
            let fd = fd_arg(fd, "fd")?;
            c.qmp
                .execute_with_fd(command, args, fd, millis(timeout_ms))?
        };
        // SAFETY: checked by need().
        unsafe { put_string(out_json, &value.to_string(), "out_json") }
    })
}

/// Registers `fd` in QEMU under `fdname` (`getfd` with SCM_RIGHTS). The caller keeps its
/// own copy of `fd`.
///
/// # Safety
/// Pointers are NULL or valid; strings NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_conn_getfd(
    conn: *mut vzdump_qemu_conn,
    fdname: *const c_char,
    fd: i32,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        // SAFETY: caller contract for all pointers.
        let c = unsafe { handle_mut(conn, "conn") }?;
        let name = unsafe { str_arg(fdname, "fdname") }?;
        let fd = fd_arg(fd, "fd")?;
        let args = serde_json::json!({ "fdname": name });
        c.qmp.execute_with_fd("getfd", Some(args), fd, None)?;
        Ok(())
    })
}

/// Takes the events received so far as a JSON array of
/// `{"event", "data", "timestamp": {"seconds", "microseconds"}}` objects.
///
/// # Safety
/// Pointers are NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_conn_take_events(
    conn: *mut vzdump_qemu_conn,
    out_json: *mut *mut c_char,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        need(out_json, "out_json")?;
        // SAFETY: caller contract.
        let c = unsafe { handle_mut(conn, "conn") }?;
        let events: Vec<Value> = c
            .qmp
            .take_events()
            .into_iter()
            .map(|e| {
                serde_json::json!({
                    "event": e.name,
                    "data": e.data,
                    "timestamp": {"seconds": e.timestamp.0, "microseconds": e.timestamp.1},
                })
            })
            .collect();
        // SAFETY: checked by need().
        unsafe { put_string(out_json, &Value::Array(events).to_string(), "out_json") }
    })
}

/// Closes and frees a connection. NULL is ignored.
///
/// # Safety
/// `conn` is NULL or a live connection handle, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_conn_free(conn: *mut vzdump_qemu_conn) {
    // SAFETY: caller contract; the constructors make handles with Box::into_raw.
    unsafe { free_handle(conn) }
}
