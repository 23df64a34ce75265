//! QMP peers, one-shot commands and open connections.

use std::ffi::{c_char, c_void};
use std::path::Path;

use serde_json::Value;

use super::args::{invalid, millis};
use super::callbacks::{signal_check, vzdump_qemu_cancel_callback};
use super::result::*;
use super::{boundary, free_handle};
use crate::qmp::{self, Options, Peer, Qmp};

/// Where a monitor socket is, plus connection settings. Create with
/// `vzdump_qemu_peer_new_vmid`, `vzdump_qemu_peer_new_path` or
/// `vzdump_qemu_peer_new_target`; free with `vzdump_qemu_peer_free`. Immutable after
/// creation but for the setters.
pub struct vzdump_qemu_peer {
    pub(crate) peer: Peer,
    pub(crate) options: Options,
    /// The guest agent's socket: `<run_dir>/<vmid>.qga` for a VM, else as set.
    pub(crate) agent: Option<Peer>,
}

impl vzdump_qemu_peer {
    fn boxed(peer: Peer, agent: Option<Peer>) -> *mut vzdump_qemu_peer {
        Box::into_raw(Box::new(vzdump_qemu_peer {
            peer,
            options: Options::default(),
            agent,
        }))
    }
}

/// An open QMP connection. It blocks every other client of the monitor until freed, so
/// free it as soon as the operation is done.
pub struct vzdump_qemu_conn {
    qmp: Qmp,
}

/// A peer for VM `vmid`: socket `<run_dir>/<vmid>.qmp`, its agent `<run_dir>/<vmid>.qga`,
/// `run_dir` NULL meaning `/var/run/qemu-server`. One-shot commands first make
/// qemu-server's running check (`<run_dir>/<vmid>.pid`) and name the peer as qemu-server
/// does (`VM 100 qmp`).
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
        let out = out!(out);
        let dir = Path::new(arg_opt_str!(run_dir).unwrap_or(qmp::DEFAULT_RUN_DIR));
        let handle =
            vzdump_qemu_peer::boxed(Peer::vmid_in(vmid, dir), Some(Peer::qga_vmid_in(vmid, dir)));
        out.put(handle);
        Ok(())
    })
}

/// A peer for the QMP socket at `path` (no guest agent unless set).
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
        let out = out!(out);
        out.put(vzdump_qemu_peer::boxed(Peer::path(arg_str!(path)), None));
        Ok(())
    })
}

/// A peer for a target as Perl code names one: a VM id (decimal digits) is
/// `vzdump_qemu_peer_new_vmid(vmid, run_dir)`, a string containing `/` the socket at that
/// path, which also serves as the agent's socket for guest-agent calls. Anything else is
/// `VZDUMP_QEMU_INVALID_PARAMETER`.
///
/// # Safety
/// `target` is NUL-terminated, `run_dir` NULL or NUL-terminated; `out`, `error` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_peer_new_target(
    target: *const c_char,
    run_dir: *const c_char,
    out: *mut *mut vzdump_qemu_peer,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let out = out!(out);
        let run_dir = arg_opt_str!(run_dir).map(Path::new);
        let (peer, agent) = Peer::from_target(arg_str!(target), run_dir)?;
        out.put(vzdump_qemu_peer::boxed(peer, Some(agent)));
        Ok(())
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
        let peer = arg_mut!(peer);
        if let Some(d) = millis(connect_ms) {
            peer.options.connect_timeout = d;
        }
        if let Some(d) = millis(handshake_ms) {
            peer.options.handshake_timeout = d;
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
        arg_mut!(peer).options.style = super::poll::style_arg(style)?;
        Ok(())
    })
}

/// Sets what the peer's calls do when a signal interrupts one of their waits on its
/// sockets (connect, send, reply; the agent's too): `check` (`userdata` first) returns true
/// to end the call with `VZDUMP_QEMU_INTERRUPTED`, false to let it go on to the same
/// deadline, e.g. after a handler for an unrelated `SIGCHLD` ran. NULL, the default: every
/// signal ends the call. Connections opened from the peer keep the check it had then. A
/// call that also takes a cancel check asks that one when a signal ended a wait. A cancel
/// after a failure runs to its end whatever `check` says.
///
/// # Safety
/// `peer` is NULL or a live peer handle not used by another thread; `check` is NULL or
/// valid with `userdata` for as long as the peer and its connections live, from whichever
/// thread runs their calls.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_peer_set_signal_check(
    peer: *mut vzdump_qemu_peer,
    check: vzdump_qemu_cancel_callback,
    userdata: *mut c_void,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        // SAFETY: the caller's contract, as documented.
        arg_mut!(peer).options.on_signal = check.map(|f| unsafe { signal_check(f, userdata) });
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
        let peer = arg_mut!(peer);
        peer.agent = Some(Peer::qga_path(arg_str!(path)));
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
/// qemu-server's `mon_cmd`, after its checks (a VM peer must run, the socket file must
/// exist). `arguments_json` is a JSON object or NULL; `timeout_ms` 0 uses qemu-server's
/// timeout for the command. On success `*out_json` receives the `return` value as JSON
/// (free with `vzdump_qemu_string_free`).
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
        let (out, peer) = (out!(out_json), arg_ref!(peer));
        let (command, args) = (arg_str!(command), arg_json!(arguments_json));
        let value = qmp::command(&peer.peer, command, args, millis(timeout_ms), &peer.options)?;
        out.put_str(&value.to_string());
        Ok(())
    })
}

/// qemu-server's `mon_cmd`: like `vzdump_qemu_command`, but a command whose name starts
/// with `guest-` goes to the peer's guest agent (as `vzdump_qemu_qga_command`), and `fd`
/// (-1: none) is passed by SCM_RIGHTS with the command (for `getfd` and `add-fd`).
///
/// # Safety
/// Pointers are NULL or valid as documented; strings NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_mon_cmd(
    peer: *const vzdump_qemu_peer,
    command: *const c_char,
    arguments_json: *const c_char,
    fd: i32,
    timeout_ms: u64,
    out_json: *mut *mut c_char,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let (out, peer) = (out!(out_json), arg_ref!(peer));
        let (command, args) = (arg_str!(command), arg_json!(arguments_json));
        let fd = arg_opt_fd!(fd);
        let value = crate::monitor::mon_cmd(
            &peer.peer,
            peer.agent.as_ref(),
            command,
            args,
            fd,
            millis(timeout_ms),
            &peer.options,
        )?;
        out.put_str(&value.to_string());
        Ok(())
    })
}

/// Opens a connection and negotiates capabilities. Only for callers that own the
/// monitor: QEMU serves nobody else until `vzdump_qemu_conn_free`. No running check (this
/// is qemu-server's `PVE::QMPClient`, not `mon_cmd`); failures name `qmp_capabilities`.
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
        let (out, peer) = (out!(out), arg_ref!(peer));
        let qmp = Qmp::connect(&peer.peer, &peer.options)?;
        out.put(Box::into_raw(Box::new(vzdump_qemu_conn { qmp })));
        Ok(())
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
        let (out, conn) = (out!(out_json), arg_mut!(conn));
        let (command, args, timeout) = (
            arg_str!(command),
            arg_json!(arguments_json),
            millis(timeout_ms),
        );
        let value = match arg_opt_fd!(fd) {
            None => conn.qmp.execute(command, args, timeout)?,
            Some(fd) => conn.qmp.execute_with_fd(command, args, fd, timeout)?,
        };
        out.put_str(&value.to_string());
        Ok(())
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
        let (conn, fdname, fd) = (arg_mut!(conn), arg_str!(fdname), arg_fd!(fd));
        let args = serde_json::json!({ "fdname": fdname });
        conn.qmp.execute_with_fd("getfd", Some(args), fd, None)?;
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
        let (out, conn) = (out!(out_json), arg_mut!(conn));
        let events: Vec<Value> = conn
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
        out.put_str(&Value::Array(events).to_string());
        Ok(())
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

/// The peer's guest agent, or an error saying how to set one.
pub(crate) fn agent_of(peer: &vzdump_qemu_peer) -> Result<&Peer, super::Failure> {
    peer.agent.as_ref().ok_or_else(|| {
        invalid("the peer has no guest agent socket: use vzdump_qemu_peer_set_agent_path")
    })
}
