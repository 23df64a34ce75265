//! The library's error type.
//!
//! Every message is the text qemu-server's own code dies with for the same failure, since
//! Perl callers and log watchers match on it (`/got timeout/`, `/not running/`,
//! `VM \d+ qmp command`). What the library knows beyond that text (QEMU's error class, the
//! stage a command failed in, the timeout that passed) is in the typed fields and the C
//! result codes, never in the message.
//!
//! | failure | message | upstream source |
//! | --- | --- | --- |
//! | pid file missing, stale or not a QEMU's | `VM 100 not running` | proxmox/qemu-server `src/PVE/QemuServer/Monitor.pm` `qmp_cmd` (`vm_running_locally` of `src/PVE/QemuServer/Helpers.pm`) |
//! | socket file missing | `unable to open monitor socket` | `Monitor.pm` `qmp_cmd` |
//! | any failure of a command | `VM 100 qmp command 'query-backup' failed - <reason>` | `src/PVE/QMPClient.pm` `cmd` |
//! | … reason: connect failed | `unable to connect to VM 100 qmp socket - Connection refused` | `QMPClient.pm` `$open_connection` |
//! | … reason: backlog stayed full | `unable to connect to VM 100 qmp socket - timeout after 51 retries` | `QMPClient.pm` `$open_connection` |
//! | … reason: EOF or reset | `client closed connection` | `QMPClient.pm` `mux_close` |
//! | … reason: no reply in time | `got timeout` | `QMPClient.pm` `mux_timeout` |
//! | … reason: reply without id | `received response without command id` (seed: `responsed`) | `QMPClient.pm` `mux_input` |
//! | … reason: reply to another id | `got wrong command id '<got>' (expected <ours>)` | `QMPClient.pm` `mux_input` |
//! | … reason: QEMU's error reply | its `desc`, e.g. `The command query-backup has not been found` | `QMPClient.pm` `mux_input` |
//!
//! The guest agent's commands read `VM 100 qga command 'guest-ping' failed - ...` today
//! (`$peer->{name} $peer->{type} command`); the seed's client of 2020 said `qmp command` for
//! them too, and the seed's `qmp_cmd` checked the monitor's socket file, not the agent's.
//! The VMA start (the seed's `queue_execute(30)` in `archive_vma`) dies with the bare
//! reason. Peers given by socket path use the same shapes with their own name
//! (`qmp socket '/path' command 'x' failed - ...`). Bytes that are not QMP at all, where
//! qemu-server would die with a JSON parser's message, read `... failed - <what was wrong>`.

use std::ffi::CStr;
use std::fmt;
use std::time::Duration;

use crate::qmp::{ErrorClass, Peer, PeerKind};
use crate::style::Style;

/// Any failure of the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// qemu-server's running check failed for a peer given by VM id: no pid file, a stale
    /// one, or one naming a process that is not this VM's QEMU. Nothing was connected.
    #[error("VM {vmid} not running")]
    NotRunning {
        /// The VM id.
        vmid: u32,
    },
    /// The socket file does not exist. Nothing was connected.
    #[error("unable to open monitor socket")]
    NoSocket {
        /// The peer whose socket is missing.
        peer: Peer,
    },
    /// A command on a monitor or agent failed (connect, handshake, reply).
    #[error(transparent)]
    Command(Box<CommandError>),
    /// A signal arrived during a wait. Nothing was lost: an open connection stays usable,
    /// and a late reply to the interrupted command is dropped by id.
    #[error("{what} interrupted by signal")]
    Interrupted {
        /// What was waiting (e.g. `VM 100 qmp command 'query-backup'`).
        what: String,
    },
    /// A caller passed an argument the library cannot use.
    #[error("{0}")]
    InvalidArgument(String),
    /// An operating system call failed.
    #[error("{context} - {source}")]
    Io {
        /// What the library was doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A backup-level failure with the seed's exact text (e.g. `got no uuid for backup task`).
    #[error("{0}")]
    Backup(String),
    /// The status-poll loop ended with an error (exact seed texts).
    #[error(transparent)]
    Poll(#[from] crate::progress::PollError),
    /// The compressor failed (exact seed texts).
    #[error(transparent)]
    Compressor(#[from] crate::compressor::CompressorError),
    /// The caller's cancel check asked to stop.
    #[error("operation cancelled by caller")]
    Cancelled,
    /// A backup job ended by a signal or by its cancel check, with the die text of the
    /// seed's signal handlers in `archive_vma` / `archive_pbs`.
    #[error("interrupted by signal")]
    Signal,
}

/// How far a command got before it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Connecting the socket: nothing was sent.
    Connect,
    /// The greeting and `qmp_capabilities` (or the agent's sync): the command itself was
    /// not sent.
    Handshake,
    /// The command was sent (or partly sent): after a timeout or a closed connection its
    /// outcome is unknown.
    Command,
}

/// Why a command failed, as qemu-server's QMP client sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cause {
    /// `connect(2)` failed with this errno (e.g. ECONNREFUSED: nobody listens).
    Connect {
        /// The errno.
        errno: i32,
    },
    /// The listen backlog stayed full until the connect timeout.
    ConnectTimeout {
        /// How many connects were tried.
        attempts: u32,
    },
    /// The peer closed the connection or reset it.
    Closed {
        /// What was seen (end of file, reset, in the middle of a message, ...).
        detail: String,
    },
    /// No reply within the timeout; the connection was closed.
    Timeout {
        /// The timeout that passed.
        after: Duration,
    },
    /// A reply without a (true) id.
    MissingId,
    /// A reply to an id this connection never sent or already answered.
    WrongId {
        /// The id of the reply, as Perl interpolates it.
        got: String,
        /// The id of the command.
        expected: String,
    },
    /// QEMU (or the agent) answered with an error object.
    Qemu {
        /// QEMU's error class.
        class: ErrorClass,
        /// QEMU's description, without a trailing newline.
        desc: String,
    },
    /// The peer sent something that is not QMP; the connection was closed.
    Protocol {
        /// What was wrong, with a short escaped excerpt of the bytes.
        reason: String,
    },
}

/// A failed command: who, what, how far it got, why.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandError {
    /// The peer.
    pub peer: Peer,
    /// The command as the caller named it (`qmp_capabilities` when only a connection was
    /// asked for).
    pub command: String,
    /// How far it got.
    pub stage: Stage,
    /// Why it failed.
    pub cause: Cause,
    /// Whose texts to print.
    pub style: Style,
    /// Print the reason alone, as the seed's VMA start does.
    pub bare: bool,
}

impl CommandError {
    /// `VM 100 qmp` (`qga` for the agent; the seed's client said `qmp` for both), or the
    /// path peer's name.
    fn prefix(&self) -> String {
        match (self.peer.vm_id(), self.peer.kind(), self.style) {
            (Some(vmid), PeerKind::Qga, Style::Seed) => format!("VM {vmid} qmp"),
            _ => self.peer.to_string(),
        }
    }

    /// The reason as qemu-server's client words it.
    pub fn reason(&self) -> String {
        match &self.cause {
            Cause::Connect { errno } => format!(
                "unable to connect to {} - {}",
                self.peer.socket_desc(),
                strerror(*errno)
            ),
            Cause::ConnectTimeout { attempts } => format!(
                "unable to connect to {} - timeout after {attempts} retries",
                self.peer.socket_desc()
            ),
            Cause::Closed { .. } => "client closed connection".into(),
            Cause::Timeout { .. } => "got timeout".into(),
            Cause::MissingId => match self.style {
                Style::Seed => "received responsed without command id".into(),
                Style::Current => "received response without command id".into(),
            },
            Cause::WrongId { got, expected } => {
                format!("got wrong command id '{got}' (expected {expected})")
            }
            Cause::Qemu { desc, .. } => desc.clone(),
            Cause::Protocol { reason } => reason.clone(),
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.bare {
            f.write_str(&self.reason())
        } else {
            write!(
                f,
                "{} command '{}' failed - {}",
                self.prefix(),
                self.command,
                self.reason()
            )
        }
    }
}

impl std::error::Error for CommandError {}

impl From<CommandError> for Error {
    fn from(e: CommandError) -> Self {
        Error::Command(Box::new(e))
    }
}

/// Proxmox's own QMP commands: a QEMU without them has no Proxmox backup support.
const PROXMOX_COMMANDS: [&str; 5] = [
    "backup",
    "query-backup",
    "backup-cancel",
    "query-proxmox-support",
    "query-pbs-bitmap-info",
];

impl Error {
    /// The failed command's details, if this is a command failure.
    pub fn command_error(&self) -> Option<&CommandError> {
        match self {
            Error::Command(c) => Some(c),
            _ => None,
        }
    }

    /// QEMU's error class, if this is an error reply from QEMU.
    pub fn class(&self) -> Option<&ErrorClass> {
        match &self.command_error()?.cause {
            Cause::Qemu { class, .. } => Some(class),
            _ => None,
        }
    }

    /// QEMU's bare `desc` for error replies, else the full message.
    pub fn desc(&self) -> String {
        match self.command_error().map(|c| &c.cause) {
            Some(Cause::Qemu { desc, .. }) => desc.clone(),
            _ => self.to_string(),
        }
    }

    /// True if the running QEMU lacks one of Proxmox's backup commands (CommandNotFound for
    /// it, not the "negotiate capabilities first" variant of that class).
    pub fn is_no_proxmox_support(&self) -> bool {
        let Some(c) = self.command_error() else {
            return false;
        };
        matches!(&c.cause, Cause::Qemu { class: ErrorClass::CommandNotFound, desc }
            if !desc.starts_with("Expecting capabilities"))
            && PROXMOX_COMMANDS.contains(&c.command.as_str())
    }

    /// True if the error is a signal interruption.
    pub fn is_interrupted(&self) -> bool {
        match self {
            Error::Interrupted { .. } => true,
            Error::Compressor(c) => c.is_interrupted(),
            _ => false,
        }
    }

    /// True if the error is a timeout (qemu-server's `error-is-timeout`).
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Command(c) => matches!(c.cause, Cause::Timeout { .. }),
            Error::Compressor(c) => c.is_timeout(),
            _ => false,
        }
    }

    /// What a Perl `eval` around the failed call would hold: a signal shows as the seed's
    /// handlers' `interrupted by signal`, anything else as its message.
    pub fn eval_text(&self) -> String {
        match self.is_signal() {
            true => Error::Signal.to_string(),
            false => self.to_string(),
        }
    }

    /// True if a signal or the caller's cancel check ended the call: what the seed's
    /// signal handlers would have died with.
    pub fn is_signal(&self) -> bool {
        matches!(self, Error::Signal | Error::Cancelled) || self.is_interrupted()
    }

    /// The same error printed as the bare reason (the seed's VMA start).
    pub(crate) fn bare(self) -> Self {
        match self {
            Error::Command(mut c) => {
                c.bare = true;
                Error::Command(c)
            }
            other => other,
        }
    }
}

extern "C" {
    // glibc since 2.6; the libc crate does not declare it for Linux.
    fn strerror_l(errnum: libc::c_int, locale: libc::locale_t) -> *mut libc::c_char;
}

/// The `strerror` text of `errno` in the C locale, as Perl's `$!` gives it (outside
/// `use locale`), whatever locale the calling process set.
pub(crate) fn strerror(errno: i32) -> String {
    // SAFETY: a NULL base asks for a new locale object; it is freed below.
    let c_locale =
        unsafe { libc::newlocale(libc::LC_ALL_MASK, c"C".as_ptr(), std::ptr::null_mut()) };
    if c_locale.is_null() {
        return format!("Unknown error {errno}");
    }
    // SAFETY: a valid locale object; glibc returns a string owned by the locale (or a
    // static one), valid until the locale is freed, so it is copied first.
    let text = unsafe {
        let p = strerror_l(errno, c_locale);
        let text = (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned());
        libc::freelocale(c_locale);
        text
    };
    text.unwrap_or_else(|| format!("Unknown error {errno}"))
}

/// Result alias of the library.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(peer: Peer, cause: Cause, style: Style) -> CommandError {
        CommandError {
            peer,
            command: "query-backup".into(),
            stage: Stage::Command,
            cause,
            style,
            bare: false,
        }
    }

    #[test]
    fn texts_are_qemu_servers() {
        let vm = || Peer::vmid(100);
        // proxmox/qemu-server src/PVE/QMPClient.pm `cmd` + `$open_connection`
        assert_eq!(
            failure(vm(), Cause::Connect { errno: libc::ECONNREFUSED }, Style::Current).to_string(),
            "VM 100 qmp command 'query-backup' failed - unable to connect to VM 100 qmp socket - Connection refused"
        );
        assert_eq!(
            failure(vm(), Cause::ConnectTimeout { attempts: 51 }, Style::Seed).to_string(),
            "VM 100 qmp command 'query-backup' failed - unable to connect to VM 100 qmp socket - timeout after 51 retries"
        );
        // QMPClient.pm `mux_close`, `mux_timeout`
        let closed = Cause::Closed {
            detail: "end of file".into(),
        };
        assert_eq!(
            failure(vm(), closed, Style::Current).to_string(),
            "VM 100 qmp command 'query-backup' failed - client closed connection"
        );
        let timeout = Cause::Timeout {
            after: Duration::from_secs(600),
        };
        assert_eq!(
            failure(vm(), timeout, Style::Seed).to_string(),
            "VM 100 qmp command 'query-backup' failed - got timeout"
        );
        // QMPClient.pm `mux_input`: today's spelling, and the 2020 client's
        assert_eq!(
            failure(vm(), Cause::MissingId, Style::Current).reason(),
            "received response without command id"
        );
        assert_eq!(
            failure(vm(), Cause::MissingId, Style::Seed).reason(),
            "received responsed without command id"
        );
        let wrong = Cause::WrongId {
            got: "1:2".into(),
            expected: "1:3".into(),
        };
        assert_eq!(
            failure(vm(), wrong, Style::Current).reason(),
            "got wrong command id '1:2' (expected 1:3)"
        );
        let qemu = Cause::Qemu {
            class: ErrorClass::CommandNotFound,
            desc: "The command query-backup has not been found".into(),
        };
        let mut e = failure(vm(), qemu, Style::Current);
        assert_eq!(
            e.to_string(),
            "VM 100 qmp command 'query-backup' failed - The command query-backup has not been found"
        );
        e.bare = true;
        assert_eq!(e.to_string(), "The command query-backup has not been found");
    }

    #[test]
    fn agent_texts_by_era() {
        let agent = Peer::qga_vmid_in(100, std::path::Path::new("/run/x"));
        let mut e = failure(
            agent,
            Cause::Connect {
                errno: libc::ENOENT,
            },
            Style::Current,
        );
        e.command = "guest-ping".into();
        // proxmox/qemu-server src/PVE/QMPClient.pm `cmd` today: `$peer->{type}` is qga
        assert_eq!(
            e.to_string(),
            "VM 100 qga command 'guest-ping' failed - unable to connect to VM 100 qga socket - No such file or directory"
        );
        // the seed's PVE::QMPClient `cmd` (2020): always `qmp command`
        e.style = Style::Seed;
        assert_eq!(
            e.to_string(),
            "VM 100 qmp command 'guest-ping' failed - unable to connect to VM 100 qga socket - No such file or directory"
        );
    }

    #[test]
    fn top_level_texts_and_kinds() {
        // proxmox/qemu-server src/PVE/QemuServer/Monitor.pm `qmp_cmd`
        assert_eq!(
            Error::NotRunning { vmid: 100 }.to_string(),
            "VM 100 not running"
        );
        let e = Error::NoSocket {
            peer: Peer::vmid(100),
        };
        assert_eq!(e.to_string(), "unable to open monitor socket");
        let not_found = |command: &str, desc: &str| {
            Error::from(CommandError {
                peer: Peer::vmid(1),
                command: command.into(),
                stage: Stage::Command,
                cause: Cause::Qemu {
                    class: ErrorClass::CommandNotFound,
                    desc: desc.into(),
                },
                style: Style::Current,
                bare: false,
            })
        };
        assert!(
            not_found("backup", "The command backup has not been found").is_no_proxmox_support()
        );
        assert!(!not_found("query-status", "x").is_no_proxmox_support());
        assert!(!not_found(
            "backup",
            "Expecting capabilities negotiation with 'qmp_capabilities'"
        )
        .is_no_proxmox_support());
        assert_eq!(
            not_found("backup", "d").class(),
            Some(&ErrorClass::CommandNotFound)
        );
    }

    #[test]
    fn strerror_is_the_c_locale_text() {
        assert_eq!(strerror(libc::ECONNREFUSED), "Connection refused");
        assert_eq!(strerror(libc::EAGAIN), "Resource temporarily unavailable");
        assert_eq!(strerror(libc::ENOENT), "No such file or directory");
    }
}
