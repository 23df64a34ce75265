//! qemu-server's `mon_cmd` (proxmox/qemu-server `src/PVE/QemuServer/Monitor.pm`): one
//! command to a VM, sent to its monitor, or to its guest agent when the name starts with
//! `guest-`.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::qga;
use crate::qmp::{self, Options, Peer};

/// Runs `command` on its own connection after qemu-server's checks: a `guest-*` command
/// on `agent` (which must be given), any other on `monitor`. `fd` is passed by
/// SCM_RIGHTS with the command (as qemu-server does for `getfd` and `add-fd`); the agent
/// takes none. `timeout` defaults to qemu-server's for the command.
pub fn mon_cmd(
    monitor: &Peer,
    agent: Option<&Peer>,
    command: &str,
    arguments: Option<Value>,
    fd: Option<BorrowedFd<'_>>,
    timeout: Option<Duration>,
    options: &Options,
) -> Result<Value> {
    if !command.starts_with("guest-") {
        return match fd {
            Some(fd) => qmp::command_with_fd(monitor, command, arguments, fd, timeout, options),
            None => qmp::command(monitor, command, arguments, timeout, options),
        };
    }
    let agent = agent.ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{command} goes to the guest agent, and there is none"
        ))
    })?;
    if fd.is_some() {
        return Err(Error::InvalidArgument(format!(
            "{command} goes to the guest agent, which takes no file descriptor"
        )));
    }
    qga::command(
        agent,
        command,
        arguments,
        timeout,
        &qga::Options::for_monitor(options),
    )
}
