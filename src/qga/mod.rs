//! A blocking client for the QEMU guest agent (QGA), and the backup's fs-freeze/thaw steps.
//!
//! The agent speaks QMP-style JSON over a `virtio-serial` channel, which QEMU exposes as the
//! unix socket `<run_dir>/<vmid>.qga`. Unlike the monitor it has no greeting and no
//! negotiation, ends messages with `\n`, answers in order (clients send no ids), and may
//! still hold half a request or unread replies of an earlier client (the channel has no
//! connection semantics on the guest side). So every operation, like qemu-server's, is:
//! connect, flush the agent's parser with a `0xFF` byte, `guest-sync-delimited` with a
//! random id, discard everything up to the `0xFF` sentinel the agent puts before that reply
//! and up to our id, then send the command, read its one reply, and close (as
//! qemu-server's client, proxmox/qemu-server `src/PVE/QMPClient.pm`).
//!
//! Timeouts are qemu-server's per-command table ([`crate::qmp::timeouts::for_command`]);
//! one budget covers sync and command together, so an agent that is configured but not
//! running (the socket connects, nothing answers) fails with `got timeout` once the
//! command's timeout passed. The agent check uses [`GUEST_PING`] as qemu-server does.

mod client;
mod freeze;

use std::time::Duration;

pub use client::{command, ping};
pub use freeze::{
    fs_freeze, fs_freeze_status, fs_freeze_unless_stopped, fs_thaw, guest_fsfreeze,
    GUEST_FSFREEZE_WAIT,
};

/// Timeout of the `guest-ping` agent check (qemu-server's `qga_check_running`).
pub const GUEST_PING: Duration = Duration::from_secs(3);

/// Connection settings of the guest-agent client.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long to retry connecting while the socket's backlog is full.
    pub connect_timeout: Duration,
    /// Timeout of [`ping`] (default [`GUEST_PING`]).
    pub ping_timeout: Duration,
    /// Replaces qemu-server's per-command timeouts for calls that pass none; `None` keeps
    /// the table ([`crate::qmp::timeouts::for_command`]).
    pub command_timeout: Option<Duration>,
    /// Largest accepted reply in bytes (default 16 MiB).
    pub max_message_size: usize,
    /// Whose failure texts to print (default: the seed's).
    pub style: crate::style::Style,
    /// Asked when a signal interrupts a wait, as [`crate::qmp::Options::on_signal`].
    pub on_signal: Option<crate::wait::SignalCheck>,
}

impl Options {
    /// The agent's settings for a VM whose monitor is reached with `monitor`: its connect
    /// timeout and style; the agent's own timeouts stay qemu-server's.
    pub fn for_monitor(monitor: &crate::qmp::Options) -> Self {
        Options {
            connect_timeout: monitor.connect_timeout,
            style: monitor.style,
            on_signal: monitor.on_signal.clone(),
            ..Options::default()
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect_timeout: crate::qmp::timeouts::CONNECT,
            ping_timeout: GUEST_PING,
            command_timeout: None,
            max_message_size: 16 * 1024 * 1024,
            style: crate::style::Style::default(),
            on_signal: None,
        }
    }
}
