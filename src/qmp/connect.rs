//! Connecting to a monitor or agent socket, shared by the QMP and QGA clients.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{self, UnixAddr};

use super::Peer;
use crate::error::{Cause, CommandError, Error, Result, Stage};
use crate::style::Style;

/// Connects a non-blocking, close-on-exec stream socket, retrying while the listen backlog
/// is full (EAGAIN) until `deadline` (qemu-server retries every 100 ms; we retry every
/// 10 ms). Any other error fails at once, e.g. ECONNREFUSED: nobody serves the socket.
/// Failures are reported for `command`, the command the connection was made for.
pub(crate) fn connect_socket(
    peer: &Peer,
    deadline: Instant,
    command: &str,
    style: Style,
) -> Result<OwnedFd> {
    let failed = |cause: Cause| {
        Error::from(CommandError {
            peer: peer.clone(),
            command: command.to_string(),
            stage: Stage::Connect,
            cause,
            style,
            bare: false,
        })
    };
    let interrupted = || Error::Interrupted {
        what: format!("connecting to {}", peer.socket_desc()),
    };
    let addr = UnixAddr::new(peer.socket_path())
        .map_err(|e| failed(Cause::Connect { errno: e as i32 }))?;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let fd = socket::socket(
            socket::AddressFamily::Unix,
            socket::SockType::Stream,
            socket::SockFlag::SOCK_CLOEXEC | socket::SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(|e| failed(Cause::Connect { errno: e as i32 }))?;
        match socket::connect(fd.as_raw_fd(), &addr) {
            Ok(()) => return Ok(fd),
            Err(Errno::EAGAIN) if Instant::now() < deadline => {
                let next = (Instant::now() + Duration::from_millis(10)).min(deadline);
                crate::wait::sleep_until(next).map_err(|_| interrupted())?;
            }
            Err(Errno::EAGAIN) => return Err(failed(Cause::ConnectTimeout { attempts })),
            Err(Errno::EINTR) => return Err(interrupted()),
            Err(e) => return Err(failed(Cause::Connect { errno: e as i32 })),
        }
    }
}
