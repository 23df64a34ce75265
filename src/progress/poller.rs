//! The status-poll loop against a live QEMU, and the seed's cancel-on-error path.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backup;
use crate::error::{Cause, CommandError, Error, Result, Stage};
use crate::log::Level;
use crate::progress::{
    self, BackupStatus, BitmapInfo, BitmapSetup, Completed, LoopError, StatusLoop, Style,
    SystemClock,
};
use crate::qmp::{Options, Peer};
use crate::wait::{self, Interrupted, SignalCheck};

/// `query-backup` on a fresh connection per query, as qemu-server's `mon_cmd`.
struct Query<'a> {
    peer: &'a Peer,
    options: &'a Options,
}

impl progress::StatusSource for Query<'_> {
    type Error = Error;
    fn query(&mut self, cancelled: &mut dyn FnMut() -> bool) -> Result<BackupStatus> {
        progress::query_watched(self.peer, self.options, cancelled)
    }
    fn interrupted(error: &Error) -> bool {
        error.is_interrupted()
    }
}

/// The system clock, whose sleeps between queries a signal ends only when the peer's
/// signal check (if any) says so, as it does for the queries' own waits.
struct PeerClock<'a> {
    on_signal: Option<&'a SignalCheck>,
}

impl progress::Clock for PeerClock<'_> {
    fn now_secs(&self) -> i64 {
        SystemClock.now_secs()
    }

    fn now(&self) -> Instant {
        SystemClock.now()
    }

    fn sleep_until(&mut self, deadline: Instant) -> std::result::Result<(), Interrupted> {
        wait::sleep_until_checked(deadline, self.on_signal)
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
    style: Style,
    job_uuid: String,
    start: i64,
    /// Today's loop: the dirty-bitmap lines are still to be logged, for a template or not.
    bitmap: Option<bool>,
    resume_on_signal: bool,
    /// When the next query is due: a resumed loop keeps its pace.
    pacing: progress::Pacing,
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
            style,
            job_uuid: job_uuid.to_string(),
            start,
            bitmap: None,
            resume_on_signal: false,
            pacing: progress::Pacing::new(interval.unwrap_or(progress::DEFAULT_INTERVAL)),
        }
    }

    /// What a signal does to [`run`](Self::run): by default it returns
    /// [`Error::Interrupted`] (call again to resume); with `resume` the cancel check is
    /// asked at once and the loop goes on unless it says stop.
    pub fn set_resume_on_signal(&mut self, resume: bool) {
        self.resume_on_signal = resume;
    }

    /// Today's loop contract (proxmox/qemu-server `src/PVE/VZDump/QemuServer.pm`,
    /// `$query_backup_status_loop`, which `archive_pbs` gives its `query-proxmox-support`
    /// reply): when `support` says `query-bitmap-info`, the loop first runs
    /// `query-pbs-bitmap-info`, logs the dirty-bitmap lines (per drive unless the VM
    /// `is_template`, then the fast incremental line) and takes the dirty bytes as its
    /// percent base. The seed style has no such step and ignores it; a VMA backup passes
    /// nothing, as `archive_vma` does.
    /// Call it before the first [`run`](Self::run).
    pub fn set_qemu_support(&mut self, support: &Value, is_template: bool) {
        let has_bitmap_info = support
            .get("query-bitmap-info")
            .is_some_and(crate::qmp::perl_true);
        self.bitmap = (self.style == Style::Current && has_bitmap_info).then_some(is_template);
    }

    /// `query-pbs-bitmap-info`, its lines logged, and the loop state rebuilt on its totals.
    fn set_up_bitmap(&mut self, is_template: bool, log: &mut dyn FnMut(Level, &str)) -> Result<()> {
        let reply = backup::pbs_bitmap_info(&self.peer, &self.options)?;
        let drives: Vec<BitmapInfo> = serde_json::from_value(reply.clone()).map_err(|e| {
            Error::from(CommandError {
                peer: self.peer.clone(),
                command: "query-pbs-bitmap-info".into(),
                stage: Stage::Command,
                cause: Cause::Protocol {
                    reason: format!(
                        "reply not understood ({e}): '{}'",
                        crate::qmp::framing::excerpt(reply.to_string().as_bytes())
                    ),
                },
                style: self.style,
                bare: false,
            })
        })?;
        let setup = BitmapSetup::new(&drives, is_template);
        for line in &setup.lines {
            log(line.level, &line.text);
        }
        self.state = StatusLoop::new(self.style, &self.job_uuid, self.start, Some(&setup));
        Ok(())
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
        if let Some(is_template) = self.bitmap {
            // Once: a resumed loop does not log the lines again.
            self.set_up_bitmap(is_template, log)?;
            self.bitmap = None;
        }
        let mut source = Query {
            peer: &self.peer,
            options: &self.options,
        };
        let options = progress::Options {
            interval: self.interval,
            resume_on_signal: self.resume_on_signal,
        };
        progress::run_paced(
            &mut self.state,
            &mut self.pacing,
            &mut source,
            &mut PeerClock {
                on_signal: self.options.on_signal.as_ref(),
            },
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

    /// Whose lines and rules the loop follows.
    pub fn style(&self) -> Style {
        self.style
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

/// What the seed's `eval` around the loop does: poll, and on any failure (signals
/// included) cancel the job through [`backup::abort_job`] and return the error.
pub fn poll_or_cancel(
    poller: &mut Poller,
    log: &mut dyn FnMut(Level, &str),
    cancelled: &mut dyn FnMut() -> bool,
) -> Result<Completed> {
    let outcome = poller.run(log, cancelled);
    if outcome.is_err() {
        backup::abort_job(&poller.peer, &poller.options, log);
    }
    outcome
}
