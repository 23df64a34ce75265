//! The stream under both clients: a unix socket to a monitor or guest agent, connected with
//! a deadline, with deadline-bounded sends and reads and one policy for signals and ends of
//! the connection. The QMP client ([`crate::qmp`]) and the guest-agent client
//! ([`crate::qga`]) keep only their protocols on top (greeting and negotiation; the 0xFF
//! flush and `guest-sync-delimited`).
//!
//! Policy: a signal during a wait, or during a send before anything was sent, asks the
//! stream's [`SignalCheck`]; without one, or when it says stop, the call ends with
//! [`StreamError::Interrupted`] (nothing is lost), else it goes on to the same deadline. A
//! signal that ends a send after part of the message went out leaves the stream unusable
//! ([`StreamError::Closed`]), since the peer could not parse the rest. A reset and any other
//! socket error are [`StreamError::Closed`] with what was seen; end of file is
//! [`StreamError::Eof`].

use std::io::IoSlice;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{self, ControlMessage, MsgFlags, UnixAddr};

use crate::error::{Cause, CommandError, Error, Result, Stage};
use crate::qmp::Peer;
use crate::style::Style;
use crate::wait::{ends_wait, poll_fd, sleep_until_checked, Readiness, SignalCheck, WaitError};

/// Why a send or read on an open stream failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamError {
    /// The deadline passed.
    TimedOut,
    /// A signal arrived; nothing was half sent.
    Interrupted,
    /// The peer closed the connection (end of file).
    Eof,
    /// The connection is gone otherwise: reset, a failed call, a half-sent message.
    Closed(String),
    /// The descriptor to pass with the message is not open; nothing was sent.
    BadFd,
}

/// A connected, non-blocking, close-on-exec unix stream socket.
#[derive(Debug)]
pub(crate) struct Stream {
    /// Closed on drop only in the process that connected.
    fd: ManuallyDrop<OwnedFd>,
    /// The process that connected: a forked child closed its copy at the fork.
    owner_pid: u32,
    /// Asked when a signal interrupts a wait.
    on_signal: Option<SignalCheck>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        if std::process::id() == self.owner_pid {
            crate::forksafe::unregister(self.fd.as_raw_fd());
            // SAFETY: dropped once, here; the field is not used afterwards.
            unsafe { ManuallyDrop::drop(&mut self.fd) };
        }
        // Else the fork handler closed it; the number may be another file's by now.
    }
}

impl Stream {
    /// Connects to `peer`'s socket, retrying while the listen backlog is full (EAGAIN) until
    /// `deadline` (qemu-server retries every 100 ms; we retry every 10 ms). Any other error
    /// fails at once, e.g. ECONNREFUSED: nobody serves the socket. Failures are reported for
    /// `command`, the command the connection is made for. `on_signal` governs every wait
    /// of the stream, this one's included.
    pub(crate) fn connect(
        peer: &Peer,
        deadline: Instant,
        command: &str,
        style: Style,
        on_signal: Option<SignalCheck>,
    ) -> Result<Stream> {
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
                Ok(()) => {
                    crate::forksafe::register(fd.as_raw_fd());
                    return Ok(Stream {
                        fd: ManuallyDrop::new(fd),
                        owner_pid: std::process::id(),
                        on_signal,
                    });
                }
                Err(Errno::EAGAIN) if Instant::now() < deadline => {
                    let next = (Instant::now() + Duration::from_millis(10)).min(deadline);
                    sleep_until_checked(next, on_signal.as_ref()).map_err(|_| interrupted())?;
                }
                Err(Errno::EAGAIN) => return Err(failed(Cause::ConnectTimeout { attempts })),
                Err(Errno::EINTR) if ends_wait(on_signal.as_ref()) => return Err(interrupted()),
                // A signal the check lets pass: try again (the socket is new each time).
                Err(Errno::EINTR) => {}
                Err(e) => return Err(failed(Cause::Connect { errno: e as i32 })),
            }
        }
    }

    /// Whether something (data, an end or an error) can be read before `deadline`.
    pub(crate) fn wait_readable(
        &self,
        deadline: Instant,
    ) -> std::result::Result<bool, StreamError> {
        match self.wait(libc::POLLIN, deadline) {
            Ok(()) => Ok(true),
            Err(StreamError::TimedOut) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until the socket is ready for `events` or `deadline`.
    fn wait(
        &self,
        events: libc::c_short,
        deadline: Instant,
    ) -> std::result::Result<(), StreamError> {
        loop {
            return match poll_fd(self.fd.as_fd(), events, deadline) {
                Ok(Readiness::Ready) => Ok(()),
                Ok(Readiness::TimedOut) => Err(StreamError::TimedOut),
                Err(WaitError::Interrupted) if !self.ends_at_signal() => continue,
                Err(WaitError::Interrupted) => Err(StreamError::Interrupted),
                Err(WaitError::Io(e)) => Err(StreamError::Closed(format!("poll failed: {e}"))),
            };
        }
    }

    /// Whether a signal that interrupted a wait ends the call (see the module docs).
    fn ends_at_signal(&self) -> bool {
        ends_wait(self.on_signal.as_ref())
    }

    /// Sends all of `bytes` by `deadline`, with `fd` (if any) attached by SCM_RIGHTS to the
    /// first chunk, so it travels in the same `sendmsg` as the command that names it.
    pub(crate) fn send(
        &self,
        bytes: &[u8],
        fd: Option<BorrowedFd<'_>>,
        deadline: Instant,
    ) -> std::result::Result<(), StreamError> {
        let mut sent = 0;
        // Once part of the message is out, a signal must not cut it short.
        let half_sent = |e: StreamError, sent: usize| match e {
            StreamError::Interrupted if sent > 0 => {
                StreamError::Closed("interrupted in the middle of sending a message".into())
            }
            other => other,
        };
        while sent < bytes.len() {
            let iov = [IoSlice::new(&bytes[sent..])];
            let raw_fds;
            let cmsgs: &[ControlMessage] = match fd {
                Some(fd) if sent == 0 => {
                    raw_fds = [fd.as_raw_fd()];
                    &[ControlMessage::ScmRights(&raw_fds)]
                }
                _ => &[],
            };
            let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
            match socket::sendmsg::<UnixAddr>(self.fd.as_raw_fd(), &iov, cmsgs, flags, None) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => self
                    .wait(libc::POLLOUT, deadline)
                    .map_err(|e| half_sent(e, sent))?,
                Err(Errno::EINTR) if sent == 0 && self.ends_at_signal() => {
                    return Err(StreamError::Interrupted)
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EBADF) if fd.is_some() && sent == 0 => return Err(StreamError::BadFd),
                Err(e) => return Err(StreamError::Closed(format!("send failed: {}", e.desc()))),
            }
        }
        Ok(())
    }

    /// Reads what has arrived (at least one byte) into `buf` by `deadline`.
    pub(crate) fn read(
        &self,
        buf: &mut [u8],
        deadline: Instant,
    ) -> std::result::Result<usize, StreamError> {
        loop {
            self.wait(libc::POLLIN, deadline)?;
            match nix::unistd::read(&*self.fd, buf) {
                Ok(0) => return Err(StreamError::Eof),
                Ok(n) => return Ok(n),
                Err(Errno::EAGAIN) => {}
                Err(Errno::EINTR) if self.ends_at_signal() => return Err(StreamError::Interrupted),
                Err(Errno::EINTR) => {}
                Err(Errno::ECONNRESET) => {
                    return Err(StreamError::Closed("connection reset".into()))
                }
                Err(e) => return Err(StreamError::Closed(format!("read failed: {}", e.desc()))),
            }
        }
    }

    /// Shuts both directions down, so the peer sees the end at once (the fd itself is
    /// closed on drop).
    pub(crate) fn shutdown(&self) {
        let _ = socket::shutdown(self.fd.as_raw_fd(), socket::Shutdown::Both);
    }

    /// The descriptor, for messages.
    pub(crate) fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// One end of a new socket pair whose other end is closed: a stream to nobody, for
    /// the fuzz targets' offline connections.
    #[cfg(fuzzing)]
    pub(crate) fn unconnected() -> Stream {
        let (fd, _other) = socket::socketpair(
            socket::AddressFamily::Unix,
            socket::SockType::Stream,
            None,
            socket::SockFlag::SOCK_CLOEXEC,
        )
        .expect("a socket pair for an offline stream");
        Stream {
            fd: ManuallyDrop::new(fd),
            owner_pid: std::process::id(),
            on_signal: None,
        }
    }
}
