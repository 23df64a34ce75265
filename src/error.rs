//! The library's error type.
//!
//! Messages name what failed (peer, command, timeout). Where qemu-server has a text for the
//! same failure, the message is that text, because Perl callers and log readers match on it:
//! `unable to connect to VM <vmid> qmp socket - <reason>`,
//! `VM <vmid> qmp command '<cmd>' failed - <desc>`, `got timeout`.

use std::time::Duration;

use crate::qmp::{ErrorClass, Peer};

/// Any failure of the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be connected.
    #[error("unable to connect to {} - {reason}", peer.socket_desc())]
    Connect {
        /// Who we tried to reach.
        peer: Peer,
        /// The OS error text, or `timeout after <n> retries`.
        reason: String,
    },
    /// The greeting or the `qmp_capabilities` negotiation failed.
    #[error("{peer} handshake failed - {reason}")]
    Handshake {
        /// The peer.
        peer: Peer,
        /// What was wrong.
        reason: String,
    },
    /// QEMU answered a command with an error object.
    #[error("{peer} command '{command}' failed - {desc}")]
    Command {
        /// The peer.
        peer: Peer,
        /// The command that failed.
        command: String,
        /// QEMU's error class, unknown classes kept as text.
        class: ErrorClass,
        /// QEMU's human-readable description.
        desc: String,
    },
    /// No reply within the command's timeout. The command may still run in QEMU; the
    /// connection was closed, since a late reply would desynchronise it.
    #[error("{peer} command '{command}' failed - got timeout after {} (outcome unknown, connection closed)", fmt_duration(*.timeout))]
    Timeout {
        /// The peer.
        peer: Peer,
        /// The command (or handshake step) that timed out.
        command: String,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// A signal arrived during a wait. Nothing was lost: the connection stays usable, and a
    /// late reply to the interrupted command is dropped by id.
    #[error("{what} interrupted by signal")]
    Interrupted {
        /// What was waiting (e.g. `VM 100 qmp command 'query-backup'`).
        what: String,
    },
    /// The peer closed the connection or it was reset. Sticky: every later call on the same
    /// connection returns it again at once.
    #[error("{peer} connection lost - {reason}")]
    Disconnected {
        /// The peer.
        peer: Peer,
        /// The first cause (EOF, reset, protocol error, earlier timeout).
        reason: String,
    },
    /// The peer sent something that is not QMP. The connection is closed.
    #[error("{peer} protocol error - {reason}")]
    Protocol {
        /// The peer.
        peer: Peer,
        /// What was wrong, with a short escaped excerpt of the bytes.
        reason: String,
    },
    /// A caller passed an argument the library cannot use.
    #[error("invalid argument - {0}")]
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
    /// The running QEMU has no Proxmox backup support.
    #[error("{peer} has no Proxmox backup support - command '{command}' not found ({desc})")]
    NoProxmoxSupport {
        /// The peer.
        peer: Peer,
        /// The missing command.
        command: String,
        /// QEMU's description (`The command <name> has not been found`).
        desc: String,
    },
    /// The status-poll loop ended with an error (exact seed texts).
    #[error(transparent)]
    Poll(#[from] crate::progress::PollError),
    /// The compressor failed (exact seed texts).
    #[error(transparent)]
    Compressor(#[from] crate::compressor::CompressorError),
    /// The caller's cancel check asked to stop.
    #[error("operation cancelled by caller")]
    Cancelled,
}

impl Error {
    /// QEMU's error class, if this is an error reply from QEMU.
    pub fn class(&self) -> Option<&ErrorClass> {
        match self {
            Error::Command { class, .. } => Some(class),
            Error::NoProxmoxSupport { .. } => Some(&ErrorClass::CommandNotFound),
            _ => None,
        }
    }

    /// QEMU's bare `desc` for error replies (what the seed's VMA start dies with), else the
    /// full message.
    pub fn desc(&self) -> String {
        match self {
            Error::Command { desc, .. } | Error::NoProxmoxSupport { desc, .. } => desc.clone(),
            other => other.to_string(),
        }
    }

    /// True if the error is a signal interruption.
    pub fn is_interrupted(&self) -> bool {
        match self {
            Error::Interrupted { .. } => true,
            Error::Compressor(c) => c.is_interrupted(),
            _ => false,
        }
    }

    /// True if the error is a command timeout (qemu-server's `error-is-timeout`).
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::Compressor(c) => c.is_timeout(),
            _ => false,
        }
    }
}

/// `5s`, `1.5s`, `10min` style durations for messages.
fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 60_000 == 0 && ms >= 60_000 {
        format!("{}min", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// Result alias of the library.
pub type Result<T> = std::result::Result<T, Error>;
