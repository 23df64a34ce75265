//! The backup's guest filesystem freeze and thaw, with the seed's log lines.
//!
//! Whether a freeze applies at all (agent configured in the VM config, not a stop-mode
//! backup, the VM was running before the backup) is the caller's decision; these functions
//! only talk to the agent. The sequence is: `if fs_freeze(..) { start backup; fs_thaw(..) }`
//! — thaw whenever a freeze was attempted, even if the freeze command failed, because the
//! agent may have frozen some filesystems before the error (or before a timeout).

use std::time::Duration;

use serde_json::Value;

use super::{command, ping, Options};
use crate::error::{Cause, CommandError, Error, Result, Stage};
use crate::log::Level;
use crate::qmp::Peer;

/// Freezes the guest's filesystems. Returns false, after logging the skip line, when the
/// agent does not answer `guest-ping` within `options.ping_timeout` (any failure of the
/// check counts, including a signal); else issues `guest-fsfreeze-freeze` with its table
/// timeout (1 h, or `options.command_timeout`), logs a failure at [`Level::Err`] and
/// returns true: the caller must then call [`fs_thaw`].
pub fn fs_freeze(peer: &Peer, options: &Options, log: &mut dyn FnMut(Level, &str)) -> bool {
    if ping(peer, options).is_err() {
        log(
            Level::Info,
            "skipping guest-agent 'fs-freeze', agent configured but not running?",
        );
        return false;
    }
    log(Level::Info, "issuing guest-agent 'fs-freeze' command");
    if let Err(e) = command(peer, "guest-fsfreeze-freeze", None, None, options) {
        log(Level::Err, &e.to_string());
    }
    true
}

/// [`fs_freeze`] for a caller that may stop meanwhile (its log sink failed, a signal
/// handler died). If `stopped()` says so once the freeze step ran and a freeze was issued,
/// the filesystems are thawed again at once, without logging (the caller is stopping and
/// could not thaw), and the result is [`Error::Cancelled`]; else `Ok(frozen)`.
pub fn fs_freeze_unless_stopped(
    peer: &Peer,
    options: &Options,
    log: &mut dyn FnMut(Level, &str),
    stopped: &mut dyn FnMut() -> bool,
) -> Result<bool> {
    let frozen = fs_freeze(peer, options, log);
    if !stopped() {
        return Ok(frozen);
    }
    if frozen {
        fs_thaw(peer, options, &mut |_, _| {});
    }
    Err(Error::Cancelled)
}

/// How long today's [`guest_fsfreeze`] waits for the freeze and for each status query.
pub const GUEST_FSFREEZE_WAIT: Duration = Duration::from_secs(10 * 60);

/// How many status queries today's [`guest_fsfreeze`] sends after a freeze that did not
/// answer in time.
const FSFREEZE_STATUS_QUERIES: u64 = 5;

/// Today's freeze (proxmox/qemu-server `src/PVE/QemuServer/Agent.pm`, `guest_fsfreeze`):
/// `guest-fsfreeze-freeze` waits [`GUEST_FSFREEZE_WAIT`] (or `options.command_timeout`,
/// which replaces it as it replaces the other timeouts) instead of an hour; if it does
/// not answer, `guest-fsfreeze-status` (queued behind a freeze still running) is asked up
/// to five times, each announced with `still waiting on guest fs freeze - timeout in <n>
/// minutes` (qemu-server prints it to the task's output; here it is an info line). Fails
/// with `unable to freeze guest fs - <desc>` when the agent refuses the freeze, `querying
/// status after freezing guest fs failed - <reason>` when the queries fail or all time
/// out (`timeout after 60 minutes`), and `unable to freeze guest fs - unexpected status
/// '<status>'` unless the guest is `frozen`.
pub fn guest_fsfreeze(
    peer: &Peer,
    options: &Options,
    log: &mut dyn FnMut(Level, &str),
) -> Result<()> {
    let each = options.command_timeout.unwrap_or(GUEST_FSFREEZE_WAIT);
    let wait = Some(each);
    match command(peer, "guest-fsfreeze-freeze", None, wait, options) {
        Ok(_) => return Ok(()),
        Err(e) if e.class().is_some() => {
            return Err(Error::Backup(format!(
                "unable to freeze guest fs - {}",
                e.desc()
            )))
        }
        Err(_) => {}
    }
    let minutes = each.as_secs() / 60;
    let mut status = None;
    for i in 0..FSFREEZE_STATUS_QUERIES {
        log(
            Level::Info,
            &format!(
                "still waiting on guest fs freeze - timeout in {} minutes",
                minutes * (FSFREEZE_STATUS_QUERIES - i)
            ),
        );
        match command(peer, "guest-fsfreeze-status", None, wait, options) {
            Ok(reply) => {
                status = Some(reply);
                break;
            }
            Err(e) if e.is_timeout() => continue,
            Err(e) => {
                // check_agent_error: an agent's error reply reads `Agent error: <desc>`.
                let reason = match e.class() {
                    Some(_) => format!("Agent error: {}", e.desc()),
                    None => e.eval_text(),
                };
                return Err(status_failed(&reason));
            }
        }
    }
    let Some(status) = status else {
        let total = minutes * (FSFREEZE_STATUS_QUERIES + 1);
        return Err(status_failed(&format!("timeout after {total} minutes")));
    };
    match status.as_str() {
        Some("frozen") => Ok(()),
        _ => {
            let shown = status
                .as_str()
                .map_or_else(|| status.to_string(), str::to_string);
            Err(Error::Backup(format!(
                "unable to freeze guest fs - unexpected status '{shown}'"
            )))
        }
    }
}

fn status_failed(reason: &str) -> Error {
    Error::Backup(format!(
        "querying status after freezing guest fs failed - {reason}"
    ))
}

/// Thaws the guest's filesystems after [`fs_freeze`] returned true; a failure is logged at
/// [`Level::Err`], since the backup itself is not affected by it.
pub fn fs_thaw(peer: &Peer, options: &Options, log: &mut dyn FnMut(Level, &str)) {
    log(Level::Info, "issuing guest-agent 'fs-thaw' command");
    if let Err(e) = command(peer, "guest-fsfreeze-thaw", None, None, options) {
        log(Level::Err, &e.to_string());
    }
}

/// The agent's `guest-fsfreeze-status`: `thawed` or `frozen`.
pub fn fs_freeze_status(peer: &Peer, options: &Options) -> Result<String> {
    match command(peer, "guest-fsfreeze-status", None, None, options)? {
        Value::String(status) => Ok(status),
        other => Err(Error::from(CommandError {
            peer: peer.clone(),
            command: "guest-fsfreeze-status".into(),
            stage: Stage::Command,
            cause: Cause::Protocol {
                reason: format!("returned {other}, expected a string"),
            },
            style: options.style,
            bare: false,
        })),
    }
}
