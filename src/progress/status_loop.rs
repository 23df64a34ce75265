//! The decision logic of the status-poll loop: one `query-backup` reply and the wall-clock
//! second it was read in → the lines to log and whether to go on. No I/O, no clock.

use std::num::NonZeroI64;

use super::bitmap::BitmapSetup;
use super::{current, seed, LogLine};
use crate::backup::BackupStatus;

pub use crate::style::Style;

/// Why the loop gave up. The texts are qemu-server's `die` messages without the newline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    /// The reply has no UUID or another job's.
    #[error("got unexpected uuid")]
    UnexpectedUuid,
    /// The job failed; QEMU's `errmsg`, or `unknown error` without one.
    #[error("{0}")]
    Backup(String),
    /// A status other than `active`, `done` or `error` (`unknown` when absent).
    #[error("got unexpected status '{0}'")]
    UnexpectedStatus(String),
    /// Seed only: the job ended `done` with fewer (or more) bytes than its total.
    #[error("got wrong number of transfered bytes ({total} != {transferred})")]
    WrongTransferred {
        /// `total` of the reply.
        total: u64,
        /// `transferred` of the reply.
        transferred: u64,
    },
}

/// What to do after an observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The job is active: query again.
    Continue,
    /// The job ended well: log [`StatusLoop::summary`] and stop.
    Finished,
    /// The loop fails with this error (after logging the observation's lines).
    Failed(PollError),
}

/// The result of one observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Lines to log, in order, before acting on `step`.
    pub lines: Vec<LogLine>,
    /// Continue, finished or failed.
    pub step: Step,
}

/// The numbers of the latest accepted reply, for callers that want data rather than text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Percent done, as printed (base `total` in the seed style, `target` in the current one).
    pub percent: u64,
    /// Bytes handed to the target.
    pub transferred: u64,
    /// Size of all included devices.
    pub total: u64,
    /// Bytes this run has to copy: `total` in the seed style, the dirty part in the current.
    pub target: u64,
    /// All-zero bytes.
    pub zero: u64,
    /// Bytes reused (PBS), 0 if not reported.
    pub reused: u64,
    /// Whole seconds since the loop started (wall clock).
    pub duration: i64,
    /// Read rate in bytes/s since the last printed line (0 when counters went backwards).
    pub read_rate: u64,
    /// Write rate in bytes/s over the same interval.
    pub write_rate: u64,
    /// The writer is being closed after all jobs finished.
    pub finishing: bool,
}

/// What the current loop hands back to its caller: the last non-zero `total` and the last
/// `reused` read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Last non-zero `total` of a printed or final reply.
    pub total: u64,
    /// `reused` of the last reply read, if it had one.
    pub reused: Option<u64>,
}

/// The values the loop carries between iterations. `zero`, `transferred`, `total` and
/// `target` change only with non-zero values, and only when a line is printed or the job
/// ends (current style); the `read_*` ones are simply the last reply's.
#[derive(Debug, Clone, Default)]
pub(super) struct Last {
    pub(super) total: u64,
    pub(super) target: u64,
    pub(super) zero: u64,
    pub(super) transferred: u64,
    pub(super) read_transferred: u64,
    pub(super) read_reused: Option<u64>,
}

/// One reply's numbers as the line formats need them.
pub(super) struct Numbers {
    pub(super) percent: u64,
    pub(super) transferred: u64,
    pub(super) total: u64,
    pub(super) target: u64,
    pub(super) zero: u64,
    pub(super) duration: i64,
    /// Bytes read since the last printed line (negative if the counter went backwards).
    pub(super) read: i128,
    /// Bytes written since the last printed line.
    pub(super) write: i128,
    /// Seconds since the last printed line, a zero difference counting as 1.
    pub(super) timediff: NonZeroI64,
}

/// A zero time difference counts as one second.
const ONE: NonZeroI64 = NonZeroI64::new(1).unwrap();

/// `int(part * 100 / whole)` without overflow, 0 for an empty whole.
pub(super) fn percent_of(part: u64, whole: u64) -> u64 {
    let per = (u128::from(part) * 100).checked_div(u128::from(whole));
    per.map_or(0, |p| u64::try_from(p).unwrap_or(u64::MAX))
}

/// Perl truthiness of an optional string: absent, `""` and `"0"` are false.
fn truthy(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty() && *v != "0")
}

/// The state of one status-poll loop.
#[derive(Debug, Clone)]
pub struct StatusLoop {
    style: Style,
    job_uuid: String,
    start: i64,
    last_time: i64,
    /// `None` before the first printed line (qemu-server's -1).
    last_percent: Option<u64>,
    last: Last,
    /// Current style: the reused counter at the last printed line (initially the clean part
    /// of the bitmaps).
    last_reused: i128,
    last_finishing: bool,
    /// Current style with bitmap info: the fixed target.
    bitmap_target: Option<u64>,
    progress: Progress,
}

impl StatusLoop {
    /// A loop for job `job_uuid` started at wall-clock second `start_secs`. `bitmap` (current
    /// style, PBS with `query-bitmap-info` support) fixes the target to the dirty bytes; the
    /// seed style ignores it.
    pub fn new(
        style: Style,
        job_uuid: &str,
        start_secs: i64,
        bitmap: Option<&BitmapSetup>,
    ) -> Self {
        let bitmap = bitmap.filter(|_| style == Style::Current);
        StatusLoop {
            style,
            job_uuid: job_uuid.to_string(),
            start: start_secs,
            last_time: start_secs,
            last_percent: None,
            last: Last::default(),
            last_reused: bitmap.map_or(0, |b| b.reused),
            last_finishing: false,
            bitmap_target: bitmap.map(|b| b.target),
            progress: Progress::default(),
        }
    }

    /// The numbers of the latest reply that passed the UUID check.
    pub fn progress(&self) -> Progress {
        self.progress
    }

    /// The current loop's return value: last non-zero total and last reused.
    pub fn totals(&self) -> Totals {
        Totals {
            total: self.last.total,
            reused: self.last.read_reused,
        }
    }

    /// Takes one `query-backup` reply, read at wall-clock second `now_secs`.
    pub fn observe(&mut self, status: &BackupStatus, now_secs: i64) -> Observation {
        // The summary uses the last values read, even from a reply that fails below.
        self.last.read_transferred = status.transferred.unwrap_or(0);
        self.last.read_reused = status.reused;
        if truthy(status.uuid.as_deref()) != Some(self.job_uuid.as_str()) {
            return failed(Vec::new(), PollError::UnexpectedUuid);
        }
        let numbers = self.measure(status, now_secs);
        self.progress = Progress {
            percent: numbers.percent,
            transferred: numbers.transferred,
            total: numbers.total,
            target: numbers.target,
            zero: numbers.zero,
            reused: status.reused.unwrap_or(0),
            duration: numbers.duration,
            read_rate: per_second(numbers.read, numbers.timediff),
            write_rate: per_second(numbers.write, numbers.timediff),
            finishing: status.finishing,
        };
        let line = match self.style {
            Style::Seed => seed::status_line(&numbers),
            Style::Current => current::status_line(&numbers),
        };

        let state = truthy(status.status.as_deref()).unwrap_or("unknown");
        if state != "active" {
            return self.end(state, status, line, &numbers);
        }
        let mut lines = Vec::new();
        if self.last_percent != Some(numbers.percent) && numbers.timediff.get() > 2 {
            lines.push(LogLine::info(line));
            self.last_percent = Some(numbers.percent);
            self.remember(&numbers);
            self.last_time = now_secs;
            if self.style == Style::Current {
                self.last_reused = i128::from(status.reused.unwrap_or(0));
                if status.finishing && !self.last_finishing {
                    lines.push(LogLine::info(
                        "Waiting for server to finish backup validation...",
                    ));
                }
                self.last_finishing = status.finishing;
            }
        }
        Observation {
            lines,
            step: Step::Continue,
        }
    }

    /// The numbers of a reply: counters absent count as 0, deltas since the last printed line.
    fn measure(&self, status: &BackupStatus, now_secs: i64) -> Numbers {
        let total = status.total.unwrap_or(0);
        let transferred = status.transferred.unwrap_or(0);
        let zero = status.zero_bytes.unwrap_or(0);
        let target = match self.style {
            Style::Seed => total,
            Style::Current => self.bitmap_target.unwrap_or(match status.dirty {
                Some(dirty) if dirty < total => dirty,
                _ => total,
            }),
        };
        let percent = match self.style {
            Style::Seed => percent_of(transferred, total),
            Style::Current if target == 0 => 100,
            Style::Current => percent_of(transferred, target),
        };
        let read = i128::from(transferred) - i128::from(self.last.transferred);
        let write = match (self.style, status.reused.filter(|&r| r != 0)) {
            // PBS counts zero chunks as reused.
            (Style::Current, Some(reused)) => read - (i128::from(reused) - self.last_reused),
            _ => read - (i128::from(zero) - i128::from(self.last.zero)),
        };
        Numbers {
            percent,
            transferred,
            total,
            target,
            zero,
            duration: now_secs.saturating_sub(self.start),
            read,
            write,
            timediff: NonZeroI64::new(now_secs.saturating_sub(self.last_time)).unwrap_or(ONE),
        }
    }

    /// The lines to log after the loop finished, at wall-clock second `now_secs`.
    pub fn summary(&self, now_secs: i64) -> Vec<LogLine> {
        let duration = now_secs.saturating_sub(self.start);
        match self.style {
            Style::Seed => seed::summary(&self.last, duration),
            Style::Current => current::summary(&self.last, duration),
        }
    }

    /// A reply whose status is not `active`.
    fn end(
        &mut self,
        state: &str,
        status: &BackupStatus,
        line: String,
        n: &Numbers,
    ) -> Observation {
        // The seed always prints the final line (so 100% may appear twice); current only
        // if it has not printed 100% yet.
        let print = self.style == Style::Seed || self.last_percent.is_none_or(|p| p < 100);
        let lines = if print {
            vec![LogLine::info(line)]
        } else {
            Vec::new()
        };
        match state {
            "done" if self.style == Style::Seed && n.total != n.transferred => failed(
                lines,
                PollError::WrongTransferred {
                    total: n.total,
                    transferred: n.transferred,
                },
            ),
            "done" => {
                if self.style == Style::Current {
                    self.remember(n);
                }
                Observation {
                    lines,
                    step: Step::Finished,
                }
            }
            "error" => {
                let message = truthy(status.errmsg.as_deref()).unwrap_or("unknown error");
                failed(lines, PollError::Backup(message.to_string()))
            }
            other => failed(lines, PollError::UnexpectedStatus(other.to_string())),
        }
    }

    /// Keeps the non-zero counters of a printed (or final) reply.
    fn remember(&mut self, n: &Numbers) {
        let keep = |last: &mut u64, value: u64| {
            if value != 0 {
                *last = value;
            }
        };
        keep(&mut self.last.total, n.total);
        keep(&mut self.last.target, n.target);
        keep(&mut self.last.zero, n.zero);
        keep(&mut self.last.transferred, n.transferred);
    }
}

fn failed(lines: Vec<LogLine>, error: PollError) -> Observation {
    Observation {
        lines,
        step: Step::Failed(error),
    }
}

/// Bytes per second, 0 for a negative count or interval.
fn per_second(bytes: i128, secs: NonZeroI64) -> u64 {
    let per = bytes / i128::from(secs.get());
    u64::try_from(per).unwrap_or(0)
}
