//! The compressor handle: waiting, exit status, killing, and reaping on drop.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use super::command::CommandSpec;
use super::error::CompressorError;
use super::reap::{self, ReapError};
use super::spawn::{spawn_child, SpawnOptions};

/// How long [`Compressor::kill_and_reap`] (and drop) waits for a SIGKILLed compressor.
/// A killed process is normally gone within milliseconds; only one stuck in the kernel
/// (e.g. writing to a dead NFS server) takes longer.
pub const KILL_REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// A compressor process reading from a pipe and writing the archive.
///
/// Obtained from [`Compressor::spawn`] together with the pipe's write end. The compressor
/// sees end-of-file, and can exit, only once every copy of the write end is closed (the
/// caller's and the one handed to QEMU); [`wait`](Compressor::wait) times out before that.
///
/// Dropping a handle whose process has not been reaped kills it with SIGKILL and reaps it
/// (waiting at most [`KILL_REAP_TIMEOUT`]), so no zombie is left behind. Only the process
/// that spawned the compressor touches it: in a forked child the handle's methods return
/// [`CompressorError::ForeignProcess`] and its drop does nothing.
#[derive(Debug)]
pub struct Compressor {
    command: String,
    pid: libc::pid_t,
    /// The process that spawned the compressor (the only one that may wait for it).
    owner: libc::pid_t,
    /// `None` if the kernel has no pidfd support; waits then poll `waitpid`.
    pidfd: Option<OwnedFd>,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not reaped yet.
    Running,
    /// Reaped, with this raw wait status.
    Exited(libc::c_int),
    /// Not ours to touch any more: reaped by someone else, or stuck after SIGKILL.
    Abandoned,
}

impl Compressor {
    /// Starts `command` with the read end of a new pipe as stdin and `output` as stdout,
    /// and returns it with the pipe's write end (close-on-exec).
    ///
    /// The caller's process is not forked (`posix_spawn`). The child has only descriptors
    /// 0, 1 and 2 (stderr is inherited), an empty signal mask and default dispositions for
    /// all signals. A program that cannot be executed is reported here, as
    /// `fork compressor '<command>' failed: <reason>`.
    pub fn spawn(
        command: &CommandSpec,
        output: BorrowedFd<'_>,
        options: &SpawnOptions,
    ) -> Result<(Compressor, OwnedFd), CompressorError> {
        let (pid, write_end) = spawn_child(command, output, options)?;
        let compressor = Compressor {
            command: command.describe(),
            pid,
            owner: current_pid(),
            pidfd: reap::open_pidfd(pid),
            state: State::Running,
        };
        Ok((compressor, write_end))
    }

    /// The compressor's process id.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// The command as messages show it.
    pub fn describe(&self) -> &str {
        &self.command
    }

    /// Waits up to `timeout` for the compressor to exit and checks its exit status:
    /// `<command> failed - wrong exit status <code>[ (signal <n>)]` unless it exited with 0.
    ///
    /// On [`Timeout`](CompressorError::Timeout) and [`Interrupted`](CompressorError::Interrupted)
    /// (a signal arrived) the compressor keeps running and `wait` can be called again. Once
    /// the compressor has been reaped, further calls return the same result at once.
    pub fn wait(&mut self, timeout: Duration) -> Result<(), CompressorError> {
        self.check_owner()?;
        match self.state {
            State::Exited(status) => return check_exit_status(&self.command, status),
            State::Abandoned => return Err(self.wait_error(no_child())),
            State::Running => {}
        }
        match reap::wait_exit(self.pid, self.pidfd(), deadline_after(timeout)) {
            Ok(Some(status)) => {
                self.state = State::Exited(status);
                check_exit_status(&self.command, status)
            }
            Ok(None) => Err(self.timeout_error(timeout)),
            Err(ReapError::Interrupted) => Err(CompressorError::Interrupted {
                command: self.command.clone(),
                pid: self.pid,
            }),
            Err(ReapError::Os(source)) => Err(self.os_failure(source)),
        }
    }

    /// Like [`wait`](Self::wait), but a signal does not end the wait: `on_signal` is asked
    /// at once, and the wait goes on (within the same `timeout`) unless it returns true
    /// ([`Interrupted`](CompressorError::Interrupted) then), as Perl's `waitpid` goes on
    /// after a handler returns.
    pub fn wait_resuming(
        &mut self,
        timeout: Duration,
        on_signal: &mut dyn FnMut() -> bool,
    ) -> Result<(), CompressorError> {
        let deadline = deadline_after(timeout);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.wait(left) {
                Err(CompressorError::Interrupted { .. }) if !on_signal() => continue,
                Err(CompressorError::Timeout { .. }) => return Err(self.timeout_error(timeout)),
                other => return other,
            }
        }
    }

    /// Kills the compressor with SIGKILL and reaps it, for the error path. Its exit status
    /// does not matter and is not checked; a compressor that already exited is just reaped.
    ///
    /// Signals arriving meanwhile do not end the wait: SIGKILL cannot be caught, so the
    /// wait is short, and returning early would leave a zombie. It is still bounded by
    /// [`KILL_REAP_TIMEOUT`]; a process that outlives it is left alone and reported as
    /// [`Timeout`](CompressorError::Timeout).
    pub fn kill_and_reap(mut self) -> Result<(), CompressorError> {
        self.check_owner()?;
        match self.state {
            State::Running => self.kill_and_reap_running(),
            State::Exited(_) | State::Abandoned => Ok(()),
        }
    }

    fn kill_and_reap_running(&mut self) -> Result<(), CompressorError> {
        if let Err(source) = reap::kill(self.pid, self.pidfd()) {
            // ESRCH: it has exited already and only needs reaping.
            if source.raw_os_error() != Some(libc::ESRCH) {
                return Err(self.wait_error(source));
            }
        }
        let deadline = deadline_after(KILL_REAP_TIMEOUT);
        loop {
            match reap::wait_exit(self.pid, self.pidfd(), deadline) {
                Ok(Some(status)) => {
                    self.state = State::Exited(status);
                    return Ok(());
                }
                Ok(None) => {
                    self.state = State::Abandoned;
                    return Err(self.timeout_error(KILL_REAP_TIMEOUT));
                }
                // See kill_and_reap: finish the bounded wait.
                Err(ReapError::Interrupted) => continue,
                Err(ReapError::Os(source)) => return Err(self.os_failure(source)),
            }
        }
    }

    fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|fd| fd.as_fd())
    }

    fn check_owner(&self) -> Result<(), CompressorError> {
        let current = current_pid();
        if current == self.owner {
            return Ok(());
        }
        Err(CompressorError::ForeignProcess {
            command: self.command.clone(),
            pid: self.pid,
            owner: self.owner,
            current,
        })
    }

    /// The error for a failed wait; `ECHILD` means someone else reaped the child, whose pid
    /// may now belong to another process: never signal or wait for it again.
    fn os_failure(&mut self, source: io::Error) -> CompressorError {
        if source.raw_os_error() == Some(libc::ECHILD) {
            self.state = State::Abandoned;
        }
        self.wait_error(source)
    }

    fn wait_error(&self, source: io::Error) -> CompressorError {
        CompressorError::Wait {
            command: self.command.clone(),
            pid: self.pid,
            source,
        }
    }

    fn timeout_error(&self, timeout: Duration) -> CompressorError {
        CompressorError::Timeout {
            command: self.command.clone(),
            pid: self.pid,
            timeout,
        }
    }
}

impl fmt::Display for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.command)
    }
}

impl Drop for Compressor {
    /// Kills and reaps an unreaped compressor (see the type's documentation).
    fn drop(&mut self) {
        if self.state == State::Running && current_pid() == self.owner {
            // Nobody to report to; the wait is bounded by KILL_REAP_TIMEOUT.
            let _ = self.kill_and_reap_running();
        }
    }
}

/// Checks a raw wait status as qemu-server does: the exit code is the status shifted right
/// by 8 bits, the signal its low 7 bits; either being non-zero is a failure.
fn check_exit_status(command: &str, status: libc::c_int) -> Result<(), CompressorError> {
    let code = status >> 8;
    let signal = status & 127;
    if code == 0 && signal == 0 {
        return Ok(());
    }
    Err(CompressorError::ExitStatus {
        command: command.to_string(),
        code,
        signal,
    })
}

fn current_pid() -> libc::pid_t {
    // SAFETY: getpid has no preconditions (glibc no longer caches it, so it is right after
    // a fork).
    unsafe { libc::getpid() }
}

fn no_child() -> io::Error {
    io::Error::from_raw_os_error(libc::ECHILD)
}

/// `timeout` from now; an absurdly long timeout means "about forever" instead of overflowing.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_text(status: libc::c_int) -> Option<String> {
        check_exit_status("gzip --rsyncable", status)
            .err()
            .map(|e| e.to_string())
    }

    #[test]
    fn exit_status_from_raw_wait_status() {
        assert_eq!(status_text(0), None);
        assert_eq!(
            status_text(1 << 8),
            Some("gzip --rsyncable failed - wrong exit status 1".into())
        );
        assert_eq!(
            status_text(3 << 8),
            Some("gzip --rsyncable failed - wrong exit status 3".into())
        );
        assert_eq!(
            status_text(libc::SIGKILL),
            Some("gzip --rsyncable failed - wrong exit status 0 (signal 9)".into())
        );
        // Core-dump flag (128) is not part of the signal number.
        assert_eq!(
            status_text(libc::SIGABRT | 0x80),
            Some("gzip --rsyncable failed - wrong exit status 0 (signal 6)".into())
        );
    }

    #[test]
    fn huge_timeout_does_not_overflow() {
        assert!(deadline_after(Duration::MAX) > Instant::now());
    }
}
