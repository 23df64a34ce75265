//! Bounded waits that a signal interrupts.
//!
//! Every blocking wait of the library goes through here: `poll(2)` and `nanosleep` report
//! `EINTR` even for handlers installed with `SA_RESTART`, and we pass that up as
//! [`Interrupted`] instead of retrying, so that a caller such as the Perl shim gets control
//! back to run its own signal handlers.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What an operation asks when a signal interrupts one of its waits: `true` ends the
/// operation with [`Error::Interrupted`](crate::Error::Interrupted), `false` lets it go on
/// to the same deadline. Without one, every signal ends the wait, so that the caller can run
/// its handlers. The Perl shim's runs the pending Perl handlers and stops only when one
/// died, as Perl's own I/O goes on after a handler that returns.
#[derive(Clone)]
pub struct SignalCheck(Arc<dyn Fn() -> bool + Send + Sync>);

impl SignalCheck {
    /// A check that calls `stops`.
    pub fn new(stops: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        SignalCheck(Arc::new(stops))
    }

    /// Signals never end the wait: for a step that must run to its end once decided.
    pub fn never() -> Self {
        SignalCheck::new(|| false)
    }

    /// Whether the signal that just came ends the operation.
    pub fn stops(&self) -> bool {
        (self.0)()
    }
}

impl std::fmt::Debug for SignalCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignalCheck")
    }
}

/// Whether a wait that `check` (if any) governs ends at a signal.
pub(crate) fn ends_wait(check: Option<&SignalCheck>) -> bool {
    check.is_none_or(SignalCheck::stops)
}

/// A wait ended early because a signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted;

/// How a wait for a file descriptor ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// The descriptor is ready for the requested events (or has an error or hang-up).
    Ready,
    /// The deadline passed first.
    TimedOut,
}

/// Milliseconds left until `deadline`, rounded up so that a wait never ends early.
fn millis_until(deadline: Instant) -> libc::c_int {
    let left = deadline.saturating_duration_since(Instant::now());
    let ms = left.as_nanos().div_ceil(1_000_000);
    ms.min(libc::c_int::MAX as u128) as libc::c_int
}

/// Waits until `fd` is ready for `events` (`libc::POLLIN`, `libc::POLLOUT`) or `deadline`.
pub fn poll_fd(
    fd: BorrowedFd<'_>,
    events: libc::c_short,
    deadline: Instant,
) -> std::result::Result<Readiness, WaitError> {
    loop {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        };
        let timeout = millis_until(deadline);
        // SAFETY: one valid pollfd, count 1.
        let rc = unsafe { libc::poll(&mut pfd, 1, timeout) };
        if rc > 0 {
            return Ok(Readiness::Ready);
        }
        if rc == 0 {
            if Instant::now() >= deadline {
                return Ok(Readiness::TimedOut);
            }
            // poll may return a little early on coarse clocks: wait out the rest.
            continue;
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EINTR) {
            return Err(WaitError::Interrupted);
        }
        return Err(WaitError::Io(err));
    }
}

/// Why a wait failed.
#[derive(Debug)]
pub enum WaitError {
    /// A signal arrived.
    Interrupted,
    /// `poll(2)` itself failed.
    Io(std::io::Error),
}

/// Sleeps until `deadline`, returning early with [`Interrupted`] when a signal arrives.
pub fn sleep_until(deadline: Instant) -> std::result::Result<(), Interrupted> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        let ts = libc::timespec {
            tv_sec: left.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        };
        // SAFETY: valid timespec; the remainder is not needed (we recompute from deadline).
        let rc = unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
        if rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            return Err(Interrupted);
        }
    }
}

/// [`sleep_until`] through the signals `check` lets pass: a signal ends the sleep only
/// when there is no check or it says stop ([`ends_wait`]).
pub(crate) fn sleep_until_checked(
    deadline: Instant,
    check: Option<&SignalCheck>,
) -> std::result::Result<(), Interrupted> {
    loop {
        match sleep_until(deadline) {
            Err(Interrupted) if !ends_wait(check) => continue,
            other => return other,
        }
    }
}

/// Sleeps for `duration`; see [`sleep_until`].
pub fn sleep(duration: Duration) -> std::result::Result<(), Interrupted> {
    sleep_until(Instant::now() + duration)
}
