//! A blocking QMP client over a unix socket.
//!
//! QEMU's monitor serves one client at a time, and a Proxmox host's daemons query it all the
//! time, so the normal way in is [`command`]: connect, negotiate, run one command, close
//! (what qemu-server's `mon_cmd` does). [`Qmp`] keeps a connection open for callers that
//! own a monitor, or for the few operations that need two commands on one connection
//! (`getfd` followed by the `backup` that consumes the fd).
//!
//! Protocol rules kept here: every command carries an id and replies are matched by it;
//! events are queued, never taken for replies; a late reply to a command a signal
//! interrupted is dropped by its id, any other reply to a wrong or missing id fails the
//! command as qemu-server's client does; after EOF, reset, protocol error or timeout the
//! connection is dead and every later call fails at once with the first cause (sticky
//! error).
//!
//! One-shot commands ([`command`]) first check, as qemu-server's `qmp_cmd` does, that a VM
//! given by id runs ([`crate::running`]) and that the socket file exists. Failure texts are
//! qemu-server's (see [`crate::Error`]).

mod client;
pub mod framing;
pub mod timeouts;

use std::fmt;
use std::path::{Path, PathBuf};

#[cfg(fuzzing)]
#[doc(hidden)]
pub use client::fuzzing::Decoder;
pub use client::{
    command, command_to_the_end, command_watched, command_with_fd, Event, Greeting, Qmp,
    CANCEL_CHECK,
};

use crate::error::{Error, Result};
use crate::style::Style;

/// Perl's truth of a decoded JSON value, as qemu-server tests replies (`!$cmdid`,
/// `$qemu_support->{...}`): null, false, `""`, `"0"` and the number 0 are false.
pub(crate) fn perl_true(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Null | Value::Bool(false) => false,
        Value::String(s) => !s.is_empty() && s != "0",
        Value::Number(n) => n.as_f64() != Some(0.0),
        _ => true,
    }
}

/// Default directory of qemu-server's monitor sockets.
pub const DEFAULT_RUN_DIR: &str = "/var/run/qemu-server";

/// Which kind of monitor a socket belongs to; used in messages as qemu-server does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// The QMP monitor (`<vmid>.qmp`).
    Qmp,
    /// The guest agent (`<vmid>.qga`).
    Qga,
}

impl fmt::Display for PeerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PeerKind::Qmp => "qmp",
            PeerKind::Qga => "qga",
        })
    }
}

/// Where a monitor socket is, and how to name it in messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    vmid: Option<u32>,
    /// The run directory of a VM peer (`<run_dir>/<vmid>.{qmp,qga,pid}`).
    run_dir: Option<PathBuf>,
    path: PathBuf,
    kind: PeerKind,
}

impl Peer {
    /// The QMP socket of VM `vmid` in [`DEFAULT_RUN_DIR`].
    pub fn vmid(vmid: u32) -> Self {
        Self::vmid_in(vmid, Path::new(DEFAULT_RUN_DIR))
    }

    /// The QMP socket of VM `vmid` in `run_dir` (`<run_dir>/<vmid>.qmp`).
    pub fn vmid_in(vmid: u32, run_dir: &Path) -> Self {
        Self::of_vm(vmid, run_dir, PeerKind::Qmp)
    }

    /// A target as Perl code names one: a VM id (decimal digits, a `u32`) means the VM's
    /// monitor in `run_dir` (default [`DEFAULT_RUN_DIR`]), anything with a `/` the socket
    /// at that path. Returns the monitor and the guest agent: `<run_dir>/<vmid>.qga` for a
    /// VM, the path itself for a path (which then must be the agent's socket when agent
    /// commands are sent to it).
    pub fn from_target(target: &str, run_dir: Option<&Path>) -> Result<(Peer, Peer)> {
        if target.contains('/') {
            return Ok((Peer::path(target), Peer::qga_path(target)));
        }
        let vmid = (!target.is_empty()
            && target.len() <= 10
            && target.bytes().all(|b| b.is_ascii_digit()))
        .then(|| target.parse::<u32>().ok())
        .flatten()
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "'{target}' is neither a VM id nor a socket path (a path contains '/')"
            ))
        })?;
        let dir = run_dir.unwrap_or(Path::new(DEFAULT_RUN_DIR));
        Ok((Peer::vmid_in(vmid, dir), Peer::qga_vmid_in(vmid, dir)))
    }

    /// A QMP socket given by path.
    pub fn path(path: impl Into<PathBuf>) -> Self {
        Self::at(path.into(), PeerKind::Qmp)
    }

    /// The guest-agent socket of VM `vmid` in `run_dir` (`<run_dir>/<vmid>.qga`).
    pub fn qga_vmid_in(vmid: u32, run_dir: &Path) -> Self {
        Self::of_vm(vmid, run_dir, PeerKind::Qga)
    }

    /// A guest-agent socket given by path.
    pub fn qga_path(path: impl Into<PathBuf>) -> Self {
        Self::at(path.into(), PeerKind::Qga)
    }

    /// VM `vmid`'s socket of `kind` in `run_dir`: `<run_dir>/<vmid>.<kind>`.
    fn of_vm(vmid: u32, run_dir: &Path, kind: PeerKind) -> Self {
        Peer {
            vmid: Some(vmid),
            run_dir: Some(run_dir.to_path_buf()),
            path: run_dir.join(format!("{vmid}.{kind}")),
            kind,
        }
    }

    /// The socket of `kind` at `path`, for no particular VM.
    fn at(path: PathBuf, kind: PeerKind) -> Self {
        Peer {
            vmid: None,
            run_dir: None,
            path,
            kind,
        }
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// The VM id, if the peer was given by one.
    pub fn vm_id(&self) -> Option<u32> {
        self.vmid
    }

    /// Monitor or guest agent.
    pub fn kind(&self) -> PeerKind {
        self.kind
    }

    /// The run directory of a peer given by VM id.
    pub fn run_dir(&self) -> Option<&Path> {
        self.run_dir.as_deref()
    }

    /// The guest agent of the same VM (`<run_dir>/<vmid>.qga`), for a peer given by VM id.
    pub fn agent(&self) -> Option<Peer> {
        Some(Peer::qga_vmid_in(self.vmid?, self.run_dir.as_deref()?))
    }

    /// qemu-server's checks before every one-shot command (`qmp_cmd`): a VM given by id
    /// must run ([`crate::running::vm_running_locally`]), else [`Error::NotRunning`]; then
    /// the socket file must exist, else [`Error::NoSocket`]. The seed's `qmp_cmd` looked
    /// for the monitor's socket even for agent commands; today's looks for the agent's.
    pub fn check_reachable(&self, style: Style) -> Result<()> {
        if let (Some(vmid), Some(dir)) = (self.vmid, &self.run_dir) {
            if crate::running::vm_running_locally(dir, vmid).is_none() {
                return Err(Error::NotRunning { vmid });
            }
        }
        let socket = match (self.kind, style, self.vmid, &self.run_dir) {
            (PeerKind::Qga, Style::Seed, Some(vmid), Some(dir)) => dir.join(format!("{vmid}.qmp")),
            _ => self.path.clone(),
        };
        // Perl's `-e`: stat, following symlinks.
        if std::fs::metadata(&socket).is_err() {
            return Err(Error::NoSocket { peer: self.clone() });
        }
        Ok(())
    }

    /// `VM 100 qmp socket`, or `qmp socket '<path>'` for a peer given by path.
    pub fn socket_desc(&self) -> String {
        match self.vmid {
            Some(vmid) => format!("VM {vmid} {} socket", self.kind),
            None => format!("{} socket '{}'", self.kind, self.path.display()),
        }
    }
}

impl fmt::Display for Peer {
    /// `VM 100 qmp` (qemu-server's wording), or `qmp socket '<path>'`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.vmid {
            Some(vmid) => write!(f, "VM {vmid} {}", self.kind),
            None => write!(f, "{} socket '{}'", self.kind, self.path.display()),
        }
    }
}

/// QEMU's error classes; classes this library does not know are kept as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorClass {
    /// `GenericError`.
    GenericError,
    /// `CommandNotFound` (also: command issued before negotiation).
    CommandNotFound,
    /// `DeviceNotActive`.
    DeviceNotActive,
    /// `DeviceNotFound`.
    DeviceNotFound,
    /// `KVMMissingCap`.
    KvmMissingCap,
    /// Any other class, verbatim.
    Other(String),
}

impl ErrorClass {
    /// Maps QEMU's class name.
    pub fn from_name(name: &str) -> Self {
        match name {
            "GenericError" => ErrorClass::GenericError,
            "CommandNotFound" => ErrorClass::CommandNotFound,
            "DeviceNotActive" => ErrorClass::DeviceNotActive,
            "DeviceNotFound" => ErrorClass::DeviceNotFound,
            "KVMMissingCap" => ErrorClass::KvmMissingCap,
            other => ErrorClass::Other(other.to_string()),
        }
    }

    /// QEMU's name of the class.
    pub fn name(&self) -> &str {
        match self {
            ErrorClass::GenericError => "GenericError",
            ErrorClass::CommandNotFound => "CommandNotFound",
            ErrorClass::DeviceNotActive => "DeviceNotActive",
            ErrorClass::DeviceNotFound => "DeviceNotFound",
            ErrorClass::KvmMissingCap => "KVMMissingCap",
            ErrorClass::Other(name) => name,
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Connection settings. Command timeouts are per call (see [`timeouts`]).
#[derive(Debug, Clone)]
pub struct Options {
    /// How long to retry connecting while the socket's backlog is full.
    pub connect_timeout: std::time::Duration,
    /// How long the greeting and `qmp_capabilities` may take together.
    pub handshake_timeout: std::time::Duration,
    /// Largest accepted message in bytes (default 16 MiB).
    pub max_message_size: usize,
    /// How many events are kept; the oldest are dropped beyond it.
    pub event_capacity: usize,
    /// How many bytes (as received) the kept events may take together; the oldest are
    /// dropped beyond it, the newest is always kept (default 16 MiB, one largest message).
    pub event_bytes: usize,
    /// Replaces qemu-server's per-command timeouts ([`timeouts::for_command`]) for calls
    /// that pass none; `None` keeps the table.
    pub command_timeout: Option<std::time::Duration>,
    /// Whose failure texts to print (default: the seed's).
    pub style: Style,
    /// Asked when a signal interrupts a wait (connect, send, reply); `None` (the default):
    /// every signal ends the call with [`Error::Interrupted`].
    pub on_signal: Option<crate::wait::SignalCheck>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect_timeout: timeouts::CONNECT,
            handshake_timeout: timeouts::HANDSHAKE,
            max_message_size: 16 * 1024 * 1024,
            event_capacity: 256,
            event_bytes: 16 * 1024 * 1024,
            command_timeout: None,
            style: Style::default(),
            on_signal: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_as_perl_names_them() {
        let (qmp, qga) = Peer::from_target("100", Some(Path::new("/run/t"))).unwrap();
        assert_eq!(
            (qmp, qga),
            (
                Peer::vmid_in(100, Path::new("/run/t")),
                Peer::qga_vmid_in(100, Path::new("/run/t"))
            )
        );
        let (qmp, _) = Peer::from_target("4294967295", None).unwrap();
        assert_eq!(
            qmp.socket_path(),
            Path::new("/var/run/qemu-server/4294967295.qmp")
        );
        let (qmp, qga) = Peer::from_target("/tmp/x.sock", None).unwrap();
        assert_eq!(
            (qmp, qga),
            (Peer::path("/tmp/x.sock"), Peer::qga_path("/tmp/x.sock"))
        );
        for bad in ["", "abc", "10x", "4294967296", "99999999999", " 1", "-1"] {
            let e = Peer::from_target(bad, None).unwrap_err().to_string();
            assert!(
                e.contains("is neither a VM id nor a socket path"),
                "{bad}: {e}"
            );
        }
    }
}
