//! Result codes of the C API.

use crate::error::{Cause, Error, Stage};

/// Result of every C API function: `VZDUMP_QEMU_OK` or one of the error codes below.
pub type vzdump_qemu_result = u32;

/// Success.
pub const VZDUMP_QEMU_OK: vzdump_qemu_result = 0;
/// A required pointer argument was NULL.
pub const VZDUMP_QEMU_NULL_PARAMETER: vzdump_qemu_result = 1;
/// An argument was invalid: not UTF-8, bad JSON, out of range, a closed fd.
pub const VZDUMP_QEMU_INVALID_PARAMETER: vzdump_qemu_result = 2;
/// The library panicked; the operation did not complete. Please report it.
pub const VZDUMP_QEMU_PANIC: vzdump_qemu_result = 3;
/// The monitor socket could not be connected (`unable to connect to ...`).
pub const VZDUMP_QEMU_CONNECT: vzdump_qemu_result = 10;
/// The QMP greeting or capabilities negotiation (or the agent's sync) failed: the command
/// itself was not sent.
pub const VZDUMP_QEMU_HANDSHAKE: vzdump_qemu_result = 11;
/// QEMU answered with an error; the message ends with QEMU's description.
pub const VZDUMP_QEMU_COMMAND: vzdump_qemu_result = 12;
/// No reply in time (`got timeout`): the command may still run in QEMU (its outcome is
/// unknown); the connection was closed.
pub const VZDUMP_QEMU_TIMEOUT: vzdump_qemu_result = 13;
/// A signal interrupted a wait; retry or give up after handling it.
pub const VZDUMP_QEMU_INTERRUPTED: vzdump_qemu_result = 14;
/// The peer closed the connection (`client closed connection`); sticky for the handle.
pub const VZDUMP_QEMU_DISCONNECTED: vzdump_qemu_result = 15;
/// The peer sent something that is not QMP, or a reply with a missing or wrong id.
pub const VZDUMP_QEMU_PROTOCOL: vzdump_qemu_result = 16;
/// An operating system call failed.
pub const VZDUMP_QEMU_IO: vzdump_qemu_result = 17;
/// A backup-level failure with the seed's text (e.g. `got no uuid for backup task`).
pub const VZDUMP_QEMU_BACKUP: vzdump_qemu_result = 18;
/// The running QEMU has no Proxmox backup support (CommandNotFound).
pub const VZDUMP_QEMU_NO_PROXMOX_SUPPORT: vzdump_qemu_result = 19;
/// The status-poll loop ended with an error (seed texts: uuid, status, byte count).
pub const VZDUMP_QEMU_POLL: vzdump_qemu_result = 20;
/// The compressor failed (spawn error or wrong exit status).
pub const VZDUMP_QEMU_COMPRESSOR: vzdump_qemu_result = 21;
/// The caller's cancel check or a callback asked to stop.
pub const VZDUMP_QEMU_CANCELLED: vzdump_qemu_result = 22;
/// A VM given by id does not run (`VM <vmid> not running`: no pid file, a stale one, or
/// not this VM's QEMU); nothing was connected.
pub const VZDUMP_QEMU_NOT_RUNNING: vzdump_qemu_result = 23;
/// The socket file does not exist (`unable to open monitor socket`); nothing was connected.
pub const VZDUMP_QEMU_NO_SOCKET: vzdump_qemu_result = 24;

/// The code for a library error.
pub(crate) fn code_of(err: &Error) -> vzdump_qemu_result {
    match err {
        Error::NotRunning { .. } => VZDUMP_QEMU_NOT_RUNNING,
        Error::NoSocket { .. } => VZDUMP_QEMU_NO_SOCKET,
        Error::Command(_) if err.is_no_proxmox_support() => VZDUMP_QEMU_NO_PROXMOX_SUPPORT,
        Error::Command(c) => match (&c.cause, c.stage) {
            (Cause::Connect { .. } | Cause::ConnectTimeout { .. }, _) => VZDUMP_QEMU_CONNECT,
            (_, Stage::Handshake) => VZDUMP_QEMU_HANDSHAKE,
            (Cause::Timeout { .. }, _) => VZDUMP_QEMU_TIMEOUT,
            (Cause::Closed { .. }, _) => VZDUMP_QEMU_DISCONNECTED,
            (Cause::Qemu { .. }, _) => VZDUMP_QEMU_COMMAND,
            (Cause::MissingId | Cause::WrongId { .. } | Cause::Protocol { .. }, _) => {
                VZDUMP_QEMU_PROTOCOL
            }
        },
        Error::Interrupted { .. } => VZDUMP_QEMU_INTERRUPTED,
        Error::InvalidArgument(_) => VZDUMP_QEMU_INVALID_PARAMETER,
        Error::Io { .. } => VZDUMP_QEMU_IO,
        Error::Backup(_) => VZDUMP_QEMU_BACKUP,
        Error::Poll(_) => VZDUMP_QEMU_POLL,
        Error::Compressor(c) if c.is_interrupted() => VZDUMP_QEMU_INTERRUPTED,
        Error::Compressor(c) if c.is_timeout() => VZDUMP_QEMU_TIMEOUT,
        Error::Compressor(_) => VZDUMP_QEMU_COMPRESSOR,
        Error::Cancelled => VZDUMP_QEMU_CANCELLED,
        Error::Signal => VZDUMP_QEMU_INTERRUPTED,
    }
}

/// What a failure knows beyond its message, for `vzdump_qemu_last_error_json`.
pub(crate) fn detail_of(err: &Error) -> serde_json::Value {
    use serde_json::{json, Value};
    let mut detail = json!({});
    match err {
        Error::NotRunning { vmid } => detail["vmid"] = json!(vmid),
        Error::NoSocket { peer } => detail["socket"] = json!(peer.socket_path()),
        Error::Command(c) => {
            detail["command"] = json!(c.command);
            detail["socket"] = json!(c.peer.socket_path());
            if let Some(vmid) = c.peer.vm_id() {
                detail["vmid"] = json!(vmid);
            }
            detail["stage"] = json!(match c.stage {
                Stage::Connect => "connect",
                Stage::Handshake => "handshake",
                Stage::Command => "command",
            });
            let (cause, extra): (&str, Value) = match &c.cause {
                Cause::Connect { errno } => ("connect", json!({ "errno": errno })),
                Cause::ConnectTimeout { attempts } => {
                    ("connect-timeout", json!({ "attempts": attempts }))
                }
                Cause::Closed { detail } => ("closed", json!({ "detail": detail })),
                Cause::Timeout { after } => {
                    let ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
                    ("timeout", json!({ "timeout_ms": ms }))
                }
                Cause::MissingId => ("missing-id", json!({})),
                Cause::WrongId { got, expected } => {
                    ("wrong-id", json!({ "got": got, "expected": expected }))
                }
                Cause::Qemu { class, desc } => {
                    ("qemu", json!({ "class": class.name(), "desc": desc }))
                }
                Cause::Protocol { reason } => ("protocol", json!({ "reason": reason })),
            };
            detail["cause"] = json!(cause);
            if let (Value::Object(d), Value::Object(e)) = (&mut detail, extra) {
                d.extend(e);
            }
        }
        _ => {}
    }
    detail
}
