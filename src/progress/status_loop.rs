//! The decision logic of the status-poll loop: one `query-backup` reply and the wall-clock
//! second it was read in → the lines to log and whether to go on. No I/O, no clock.

use super::bitmap::BitmapSetup;
use super::perl_num::PerlNum;
use super::BackupStatus;
use super::{current, seed};
use crate::log::LogLine;

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
///
/// They are the values qemu-server computes (in Perl); one that does not fit its field
/// saturates (a percent only does where `transferred` exceeds its base about 1.8e17-fold, a
/// target only for bitmaps whose dirty sizes add up to more than `u64::MAX`).
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
    /// Read rate in bytes/s since the last printed line: `int($rbytes / $timediff)` as
    /// qemu-server's `$get_mbps` computes it, 0 when not positive (counters went backwards).
    pub read_rate: u64,
    /// Write rate in bytes/s over the same interval, computed the same way.
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
    /// May be a double: the bitmap target is a Perl sum.
    pub(super) target: PerlNum,
    pub(super) zero: u64,
    pub(super) transferred: u64,
    pub(super) read_transferred: u64,
    pub(super) read_reused: Option<u64>,
}

/// One reply's numbers as the line formats need them.
pub(super) struct Numbers {
    pub(super) percent: PerlNum,
    pub(super) transferred: u64,
    pub(super) total: u64,
    pub(super) target: PerlNum,
    pub(super) zero: u64,
    pub(super) duration: PerlNum,
    /// Bytes read since the last printed line (negative if the counter went backwards).
    pub(super) read: PerlNum,
    /// Bytes written since the last printed line.
    pub(super) write: PerlNum,
    /// Seconds since the last printed line, a zero difference counting as 1: never zero.
    pub(super) timediff: PerlNum,
}

/// `$whole ? int(($part * 100) / $whole) : $empty`, in Perl numbers. The division fails
/// exactly when `whole` is false (zero), so that is the `$empty` case.
pub(super) fn percent_of(part: PerlNum, whole: PerlNum, empty: i64) -> PerlNum {
    (part * PerlNum::iv(100))
        .checked_div(whole)
        .map_or(PerlNum::iv(empty), PerlNum::int)
}

/// `int($mb / $delta)` of qemu-server's `$get_mbps`, `None` where it returns early because
/// `$mb <= 0`. `delta` is never zero.
pub(super) fn per_second(mb: PerlNum, delta: PerlNum) -> Option<PerlNum> {
    if !mb.num_gt(PerlNum::ZERO) {
        return None;
    }
    Some(mb.checked_div(delta).map_or(PerlNum::ZERO, PerlNum::int))
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
    /// -1 before the first printed line, as in qemu-server.
    last_percent: PerlNum,
    last: Last,
    /// Current style: the reused counter at the last printed line (initially the clean part
    /// of the bitmaps).
    last_reused: PerlNum,
    last_finishing: bool,
    /// Current style with bitmap info: the fixed target.
    bitmap_target: Option<PerlNum>,
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
            last_percent: PerlNum::iv(-1),
            last: Last::default(),
            last_reused: bitmap.map_or(PerlNum::ZERO, |b| b.reused),
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
        let rate =
            |bytes| per_second(bytes, numbers.timediff).map_or(0, PerlNum::to_u64_saturating);
        self.progress = Progress {
            percent: numbers.percent.to_u64_saturating(),
            transferred: numbers.transferred,
            total: numbers.total,
            target: numbers.target.to_u64_saturating(),
            zero: numbers.zero,
            reused: status.reused.unwrap_or(0),
            duration: numbers.duration.to_i64_saturating(),
            read_rate: rate(numbers.read),
            write_rate: rate(numbers.write),
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
        if numbers.percent.num_ne(self.last_percent) && numbers.timediff.num_gt(PerlNum::iv(2)) {
            lines.push(LogLine::info(line));
            self.last_percent = numbers.percent;
            self.remember(&numbers);
            self.last_time = now_secs;
            if self.style == Style::Current {
                // $last_reused = $reused: undef without one, which is no integer in the
                // next subtraction.
                self.last_reused = status.reused.map_or(PerlNum::UNDEF, PerlNum::from);
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

    /// The numbers of a reply: counters absent count as 0, deltas since the last printed
    /// line; all in Perl numbers, as `$query_backup_status_loop` computes them.
    fn measure(&self, status: &BackupStatus, now_secs: i64) -> Numbers {
        let total = status.total.unwrap_or(0);
        let transferred = status.transferred.unwrap_or(0);
        let zero = status.zero_bytes.unwrap_or(0);
        let target = match self.style {
            Style::Seed => PerlNum::from(total),
            // (defined($dirty) && $dirty < $total) ? $dirty : $total, unless fixed by bitmaps
            Style::Current => self.bitmap_target.unwrap_or(match status.dirty {
                Some(dirty) if dirty < total => PerlNum::from(dirty),
                _ => PerlNum::from(total),
            }),
        };
        let percent = match self.style {
            // $total ? int(($transferred * 100)/$total) : 0
            Style::Seed => percent_of(PerlNum::from(transferred), target, 0),
            // $target ? int(($transferred * 100) / $target) : 100
            Style::Current => percent_of(PerlNum::from(transferred), target, 100),
        };
        let ctime = PerlNum::from(now_secs);
        // $rbytes = $transferred - $last_transferred
        let read = PerlNum::from(transferred) - PerlNum::from(self.last.transferred);
        let write = match (self.style, status.reused.filter(|&r| r != 0)) {
            // PBS counts zero chunks as reused: $rbytes - ($reused - $last_reused)
            (Style::Current, Some(reused)) => read - (PerlNum::from(reused) - self.last_reused),
            // $rbytes - ($zero - $last_zero)
            _ => read - (PerlNum::from(zero) - PerlNum::from(self.last.zero)),
        };
        // ($ctime - $last_time) || 1
        let timediff = ctime - PerlNum::from(self.last_time);
        Numbers {
            percent,
            transferred,
            total,
            target,
            zero,
            duration: ctime - PerlNum::from(self.start),
            read,
            write,
            timediff: if timediff.is_true() {
                timediff
            } else {
                PerlNum::iv(1)
            },
        }
    }

    /// The lines to log after the loop finished, at wall-clock second `now_secs`.
    pub fn summary(&self, now_secs: i64) -> Vec<LogLine> {
        let duration = PerlNum::from(now_secs) - PerlNum::from(self.start);
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
        let print = self.style == Style::Seed || self.last_percent.num_lt(PerlNum::iv(100));
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
                // QEMU's text may carry what a guest wrote: one line, capped.
                let message = truthy(status.errmsg.as_deref())
                    .map_or_else(|| "unknown error".to_string(), crate::log::peer_text);
                failed(lines, PollError::Backup(message))
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
        if n.target.is_true() {
            self.last.target = n.target;
        }
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
