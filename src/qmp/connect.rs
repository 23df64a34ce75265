//! Connecting to a monitor or agent socket, shared by the QMP and QGA clients.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{self, UnixAddr};

use super::Peer;
use crate::error::{Error, Result};

/// Connects a non-blocking, close-on-exec stream socket, retrying while the listen backlog
/// is full (EAGAIN) until `deadline` (qemu-server retries every 100 ms; we retry every
/// 10 ms). ENOENT and ECONNREFUSED fail at once: nobody serves the socket.
pub(crate) fn connect_socket(peer: &Peer, deadline: Instant) -> Result<OwnedFd> {
    let connect_err = |reason: String| Error::Connect {
        peer: peer.clone(),
        reason,
    };
    let interrupted = || Error::Interrupted {
        what: format!("connecting to {}", peer.socket_desc()),
    };
    let addr = UnixAddr::new(peer.socket_path())
        .map_err(|e| connect_err(format!("invalid socket path: {}", e.desc())))?;
    let mut retries = 0u32;
    loop {
        let fd = socket::socket(
            socket::AddressFamily::Unix,
            socket::SockType::Stream,
            socket::SockFlag::SOCK_CLOEXEC | socket::SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(|e| connect_err(format!("socket() failed: {}", e.desc())))?;
        match socket::connect(fd.as_raw_fd(), &addr) {
            Ok(()) => return Ok(fd),
            Err(Errno::EAGAIN) if Instant::now() < deadline => {
                retries += 1;
                let next = (Instant::now() + Duration::from_millis(10)).min(deadline);
                crate::wait::sleep_until(next).map_err(|_| interrupted())?;
            }
            Err(Errno::EAGAIN) => {
                return Err(connect_err(format!("timeout after {retries} retries")))
            }
            Err(Errno::EINTR) => return Err(interrupted()),
            Err(e) => return Err(connect_err(e.desc().to_string())),
        }
    }
}
