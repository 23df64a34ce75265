//! Waiting for a child to exit within a deadline, and killing it.
//!
//! With a pidfd (Linux 5.3 and later) the wait is a `poll` on it; without one (old kernel,
//! seccomp) it is `waitpid(WNOHANG)` between short sleeps. Either way a signal ends the wait
//! with [`ReapError::Interrupted`].

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::wait::{poll_fd, sleep_until, WaitError};

/// First and longest sleep between two `waitpid` calls when there is no pidfd.
const FIRST_POLL_STEP: Duration = Duration::from_millis(1);
const MAX_POLL_STEP: Duration = Duration::from_millis(50);

/// Why a wait for a child failed.
#[derive(Debug)]
pub(crate) enum ReapError {
    /// A signal arrived.
    Interrupted,
    /// A system call failed (e.g. `ECHILD`: someone else reaped the child).
    Os(io::Error),
}

/// A pidfd for `pid`, or `None` if the kernel refuses (the caller then polls `waitpid`).
pub(crate) fn open_pidfd(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if rc < 0 {
        return None;
    }
    // SAFETY: rc is a new descriptor (close-on-exec by kernel default) that nothing owns.
    Some(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
}

/// Sends SIGKILL to the child's process group (the child leads it: what a shell it runs
/// started dies with it), then to the child itself, through its pidfd when there is one
/// (which cannot hit a recycled pid even if something else reaped the child). The group is
/// signalled only while the child is unreaped: until then no other group can have its id.
pub(crate) fn kill(pid: libc::pid_t, pidfd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    if pid > 1 && is_unreaped_child(pid) {
        // SAFETY: kill(2) of the group our unreaped child leads; a failure (ESRCH: the
        // group is gone) leaves the child's own kill below to report.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let rc = match pidfd {
        // SAFETY: pidfd_send_signal with a valid descriptor, no siginfo and no flags.
        Some(fd) => unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        },
        // SAFETY: plain kill(2) of our own unreaped child, whose pid cannot be reused.
        None => libc::c_long::from(unsafe { libc::kill(pid, libc::SIGKILL) }),
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits until the child `pid` exits and reaps it, returning its raw wait status, or `None`
/// if it is still running at `deadline`.
pub(crate) fn wait_exit(
    pid: libc::pid_t,
    pidfd: Option<BorrowedFd<'_>>,
    deadline: Instant,
) -> Result<Option<libc::c_int>, ReapError> {
    let mut step = FIRST_POLL_STEP;
    loop {
        if let Some(status) = try_reap(pid).map_err(ReapError::Os)? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        match pidfd {
            Some(fd) => match poll_fd(fd, libc::POLLIN, deadline) {
                Ok(_) => {}
                Err(WaitError::Interrupted) => return Err(ReapError::Interrupted),
                Err(WaitError::Io(err)) => return Err(ReapError::Os(err)),
            },
            None => {
                sleep_until(deadline.min(now + step)).map_err(|_| ReapError::Interrupted)?;
                step = (step * 2).min(MAX_POLL_STEP);
            }
        }
    }
}

/// Reaps the child if it has exited, without blocking.
/// Whether `pid` is a child of this process that nobody reaped yet (running or a zombie),
/// asked without reaping it (`waitid` with `WNOWAIT`).
fn is_unreaped_child(pid: libc::pid_t) -> bool {
    let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::zeroed();
    // SAFETY: waitid with a valid siginfo pointer; WNOHANG and WNOWAIT neither block nor
    // reap. It fails with ECHILD for a pid that is not an unreaped child of ours.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            info.as_mut_ptr(),
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    rc == 0
}

fn try_reap(pid: libc::pid_t) -> io::Result<Option<libc::c_int>> {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid with a valid status pointer; WNOHANG makes it return at once.
    let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    match rc {
        0 => Ok(None),
        rc if rc == pid => Ok(Some(status)),
        _ => Err(io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::process::Command;

    fn spawn(program: &str, args: &[&str]) -> libc::pid_t {
        Command::new(program).args(args).spawn().unwrap().id() as libc::pid_t
    }

    fn in_secs(secs: u64) -> Instant {
        Instant::now() + Duration::from_secs(secs)
    }

    /// Both ways of waiting: through a pidfd and by polling waitpid.
    fn with_and_without_pidfd(test: impl Fn(libc::pid_t, Option<BorrowedFd<'_>>)) {
        for use_pidfd in [true, false] {
            let pid = spawn("sleep", &["5"]);
            let pidfd = use_pidfd.then(|| open_pidfd(pid).expect("pidfd_open"));
            test(pid, pidfd.as_ref().map(|fd| fd.as_fd()));
        }
    }

    #[test]
    fn exit_status_is_returned() {
        for use_pidfd in [true, false] {
            let pid = spawn("sh", &["-c", "exit 7"]);
            let pidfd = use_pidfd.then(|| open_pidfd(pid).expect("pidfd_open"));
            let status = wait_exit(pid, pidfd.as_ref().map(|fd| fd.as_fd()), in_secs(10))
                .unwrap()
                .expect("exited");
            assert_eq!(status >> 8, 7);
        }
    }

    #[test]
    fn deadline_then_kill() {
        with_and_without_pidfd(|pid, pidfd| {
            let deadline = Instant::now() + Duration::from_millis(30);
            assert!(wait_exit(pid, pidfd, deadline).unwrap().is_none());
            kill(pid, pidfd).unwrap();
            let status = wait_exit(pid, pidfd, in_secs(10)).unwrap().expect("killed");
            assert_eq!(status & 127, libc::SIGKILL);
        });
    }

    #[test]
    fn reaping_twice_is_echild() {
        let pid = spawn("true", &[]);
        assert!(wait_exit(pid, None, in_secs(10)).unwrap().is_some());
        match wait_exit(pid, None, in_secs(10)) {
            Err(ReapError::Os(err)) => assert_eq!(err.raw_os_error(), Some(libc::ECHILD)),
            other => panic!("{other:?}"),
        }
    }
}
