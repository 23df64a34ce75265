//! The status-poll loop against a live QEMU, and the seed's cancel-on-error path.

use std::time::Duration;

use crate::backup;
use crate::error::{Error, Result};
use crate::progress::{self, Completed, Level, LoopError, StatusLoop, Style, SystemClock};
use crate::qmp::{Options, Peer};

/// `query-backup` on a fresh connection per query, as qemu-server's `mon_cmd`.
struct Query<'a> {
    peer: &'a Peer,
    options: &'a Options,
}

impl progress::StatusSource for Query<'_> {
    type Error = Error;
    fn query(&mut self) -> Result<backup::BackupStatus> {
        backup::query(self.peer, self.options)
    }
}

/// One job's status-poll loop. Its state (start time, last printed line) survives an
/// [`Error::Interrupted`], so [`Poller::run`] can be called again after the caller handled
/// the signal.
#[derive(Debug)]
pub struct Poller {
    peer: Peer,
    options: Options,
    state: StatusLoop,
    interval: Duration,
}

impl Poller {
    /// Starts the loop's clock now (the seed's `$starttime = time()`). `interval` is the
    /// steady-state time between queries, default 1 s. `style` words the lines and also
    /// the failures of the queries (it replaces `options.style`).
    pub fn new(
        peer: &Peer,
        options: &Options,
        job_uuid: &str,
        style: Style,
        interval: Option<Duration>,
    ) -> Self {
        let start = progress::Clock::now_secs(&SystemClock);
        // The loop's style also words the failures of its queries.
        let options = Options {
            style,
            ..options.clone()
        };
        Poller {
            peer: peer.clone(),
            options,
            state: StatusLoop::new(style, job_uuid, start, None),
            interval: interval.unwrap_or(progress::DEFAULT_INTERVAL),
        }
    }

    /// Runs (or resumes) the loop until the job ends, sending every line to `log`.
    /// `cancelled` is checked at least every 100 ms. Errors: [`Error::Poll`] with the
    /// seed's texts, [`Error::Interrupted`] on a signal, [`Error::Cancelled`], or the
    /// query's own error (the loop never spins on a vanished QEMU).
    pub fn run(
        &mut self,
        log: &mut dyn FnMut(Level, &str),
        cancelled: &mut dyn FnMut() -> bool,
    ) -> Result<Completed> {
        let mut source = Query {
            peer: &self.peer,
            options: &self.options,
        };
        let options = progress::Options {
            interval: self.interval,
        };
        progress::run(
            &mut self.state,
            &mut source,
            &mut SystemClock,
            log,
            cancelled,
            options,
        )
        .map_err(|e| match e {
            LoopError::Poll(p) => Error::Poll(p),
            LoopError::Source(e) => e,
            LoopError::Interrupted => Error::Interrupted {
                what: "backup status loop".into(),
            },
            LoopError::Cancelled => Error::Cancelled,
        })
    }

    /// The peer the loop queries.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The connection settings of its queries.
    pub fn options(&self) -> &Options {
        &self.options
    }
}

/// The seed's `mon_backup_cancel`: logs `aborting backup job`, sends `backup-cancel`, and
/// logs a failure of that at error level (it never hides the original error).
pub fn abort_job(peer: &Peer, options: &Options, log: &mut dyn FnMut(Level, &str)) {
    log(Level::Info, "aborting backup job");
    if let Err(e) = backup::cancel(peer, options) {
        log(Level::Err, &e.to_string());
    }
}

/// What the seed's `eval` around the loop does: poll, and on any failure (signals
/// included) cancel the job through [`abort_job`] and return the error.
pub fn poll_or_cancel(
    poller: &mut Poller,
    log: &mut dyn FnMut(Level, &str),
    cancelled: &mut dyn FnMut() -> bool,
) -> Result<Completed> {
    let outcome = poller.run(log, cancelled);
    if outcome.is_err() {
        abort_job(&poller.peer, &poller.options, log);
    }
    outcome
}
