//! One monitor connection: greeting, reading with SCM_RIGHTS, splitting into JSON objects,
//! replies in request order.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use crate::dispatch::{self, error_reply, Outcome, Session};
use crate::input::{Input, Item};
use crate::qapi::QmpError;
use crate::qjson::{obj, J};
use crate::state::Sim;

/// A client that does not read its replies for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// What `--fault-garbage` sends instead of a reply.
const GARBAGE: &[u8] = b"\xffgarbage-reply: this is not JSON\r\n";

/// How a connection ended.
pub enum Served {
    /// The client went away (or was dropped).
    Closed,
    /// `quit` was executed: the process should exit.
    Quit,
}

/// Serves one client until it disconnects.
pub fn serve(sim: &Arc<Sim>, stream: UnixStream) -> Served {
    let served = match stream.try_clone() {
        Ok(writer) => {
            let _ = writer.set_write_timeout(Some(WRITE_TIMEOUT));
            sim.out.attach(writer);
            if sim.out.send(&greeting(sim)).is_ok() {
                session(sim, &stream)
            } else {
                Served::Closed
            }
        }
        Err(e) => {
            eprintln!("pve-qmp-sim: cannot serve a connection: {e}");
            Served::Closed
        }
    };
    sim.out.detach();
    served
}

/// `{"QMP": {"version": ..., "capabilities": []}}`: Proxmox's QEMU offers no `oob`.
fn greeting(sim: &Sim) -> J {
    obj([(
        "QMP",
        obj([
            ("version", dispatch::version(sim)),
            ("capabilities", J::Arr(Vec::new())),
        ]),
    )])
}

fn session(sim: &Arc<Sim>, stream: &UnixStream) -> Served {
    let mut session = Session::default();
    let mut input = Input::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (n, fds) = match receive(stream, &mut buf) {
            Ok(x) => x,
            Err(_) => return Served::Closed,
        };
        session.pending_fd.received(fds);
        if n == 0 {
            return Served::Closed;
        }
        input.push(&buf[..n]);
        while let Some(item) = input.next_item() {
            let outcome = match item {
                Item::Object(raw) => dispatch::handle(sim, &mut session, &raw),
                Item::Error(desc) => Outcome::Reply(error_reply(None, &QmpError::generic(desc))),
            };
            match outcome {
                Outcome::Hang => {
                    wait_for_hangup(stream);
                    return Served::Closed;
                }
                Outcome::Quit(reply) => {
                    answer(sim, Outcome::Reply(reply));
                    sim.out.event(
                        "SHUTDOWN",
                        Some(obj([
                            ("guest", false.into()),
                            ("reason", "host-qmp-quit".into()),
                        ])),
                    );
                    return Served::Quit;
                }
                outcome => {
                    if !answer(sim, outcome) {
                        return Served::Closed;
                    }
                }
            }
        }
    }
}

/// Sends a reply (after `--fault-slow-ms`); false if the client is gone.
fn answer(sim: &Sim, outcome: Outcome) -> bool {
    std::thread::sleep(Duration::from_millis(sim.cfg.faults.slow_ms));
    match outcome {
        Outcome::Reply(j) | Outcome::Quit(j) => sim.out.send(&j).is_ok(),
        Outcome::Garbage => sim.out.send_raw(GARBAGE).is_ok(),
        Outcome::Hang => true,
    }
}

/// One `recvmsg`: the bytes and any fds that came with them (as QEMU's socket chardev
/// does, the fds belong to this read).
fn receive(stream: &UnixStream, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; 16]);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => msg,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut fds = Vec::new();
        for cmsg in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                for fd in raw {
                    // SAFETY: the kernel just installed this fd for us; nothing else owns it.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        return Ok((msg.bytes, fds));
    }
}

/// A wedged monitor: read nothing more, just notice when the client gives up.
fn wait_for_hangup(stream: &UnixStream) {
    let done = libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;
    loop {
        // Only POLLRDHUP is asked for, so pending input does not wake us up. (nix's
        // PollFlags lacks POLLRDHUP, hence libc.)
        let mut pfd = libc::pollfd {
            fd: stream.as_raw_fd(),
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one valid pollfd, and the fd stays open for the call.
        let n = unsafe { libc::poll(&mut pfd, 1, -1) };
        if n < 0 && Errno::last() != Errno::EINTR {
            return;
        }
        if n > 0 && pfd.revents & done != 0 {
            return;
        }
    }
}
