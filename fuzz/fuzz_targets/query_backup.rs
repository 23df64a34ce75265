//! `query-backup` replies through the status-poll loop (`src/progress`): the serde decoding
//! of `BackupStatus` as `progress::query` does it, then the whole loop (`progress::run`:
//! the seed's and today's lines, the scheduler, the pace) in simulated time, for both
//! styles.
//!
//! Input: lines. A line with a `{` is a reply: the JSON from the first `{` is the `return`
//! value of one `query-backup`; words before it are `+<ms>` (the query takes that long)
//! and `@<s>` (the wall clock jumps by s seconds first). Other lines: `!` (the query is
//! interrupted by a signal), `resume` (signals resume the loop), `interval <ms>`,
//! `template`, and `bitmap <json>` (a `query-pbs-bitmap-info` reply for today's style).
//! The job's uuid is that of the first reply that has one.
//!
//! Checked: nothing panics; the lines the loop logs from its numbers are single lines; a
//! job's `errmsg` comes back as one line; a completed loop reports the last reply's
//! counters; no wait between two queries is longer than the interval (the scheduler's
//! bound: the end is never noticed later than with one query per interval).
#![no_main]

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vzdump_qemu::log::{self, Level};
use vzdump_qemu::progress::{
    self, BackupStatus, BitmapInfo, BitmapSetup, Clock, LoopError, PollError, StatusLoop,
    StatusSource, Style, MAX_INTERVAL, MIN_DELAY,
};
use vzdump_qemu::wait::Interrupted;

const EPOCH: i64 = 1_700_000_000;

/// One query's outcome and how the clocks move around it.
enum Query {
    Reply {
        status: Box<BackupStatus>,
        latency: Duration,
        jump: i64,
    },
    Signal,
}

#[derive(Default)]
struct Script {
    queries: Vec<Query>,
    bitmap: Option<Vec<BitmapInfo>>,
    template: bool,
    resume: bool,
    interval: Option<Duration>,
}

fn parse(data: &[u8]) -> Script {
    let mut script = Script::default();
    for line in data.split(|&b| b == b'\n') {
        if let Some(at) = line.iter().position(|&b| b == b'{') {
            let Ok(value) = serde_json::from_slice::<Value>(&line[at..]) else {
                continue;
            };
            // As `progress::query` decodes the reply.
            let Ok(status) = serde_json::from_value::<BackupStatus>(value) else {
                continue;
            };
            let (mut latency, mut jump) = (Duration::ZERO, 0i64);
            for word in String::from_utf8_lossy(&line[..at]).split_whitespace() {
                if let Some(ms) = word.strip_prefix('+').and_then(|n| n.parse::<u16>().ok()) {
                    latency = Duration::from_millis(u64::from(ms));
                } else if let Some(s) = word.strip_prefix('@').and_then(|n| n.parse::<i32>().ok()) {
                    jump = i64::from(s);
                }
            }
            script.queries.push(Query::Reply {
                status: Box::new(status),
                latency,
                jump,
            });
            continue;
        }
        let text = String::from_utf8_lossy(line);
        let text = text.trim();
        if text == "!" {
            script.queries.push(Query::Signal);
        } else if text == "resume" {
            script.resume = true;
        } else if text == "template" {
            script.template = true;
        } else if let Some(ms) = text.strip_prefix("interval ") {
            script.interval = ms
                .parse::<u32>()
                .ok()
                .map(|ms| Duration::from_millis(ms.into()));
        } else if let Some(json) = text.strip_prefix("bitmap ") {
            script.bitmap = serde_json::from_str(json).ok();
        }
    }
    script
}

/// Simulated time shared by the clock and the source: monotonic since the start, and the
/// wall clock's offset from it.
#[derive(Clone)]
struct Time {
    start: Instant,
    elapsed: Rc<Cell<Duration>>,
    wall_offset: Rc<Cell<i64>>,
}

impl Clock for Time {
    fn now_secs(&self) -> i64 {
        EPOCH + self.elapsed.get().as_secs() as i64 + self.wall_offset.get()
    }

    fn now(&self) -> Instant {
        self.start + self.elapsed.get()
    }

    fn sleep_until(&mut self, deadline: Instant) -> Result<(), Interrupted> {
        let target = deadline.saturating_duration_since(self.start);
        self.elapsed.set(self.elapsed.get().max(target));
        Ok(())
    }
}

struct Source<'a> {
    queries: std::slice::Iter<'a, Query>,
    time: Time,
    last: Option<Duration>,
    interval: Duration,
    answered: Option<BackupStatus>,
}

#[derive(Debug)]
enum SourceError {
    Signal,
    Exhausted,
}

impl StatusSource for Source<'_> {
    type Error = SourceError;

    fn query(&mut self, _cancelled: &mut dyn FnMut() -> bool) -> Result<BackupStatus, SourceError> {
        let now = self.time.elapsed.get();
        if let Some(last) = self.last {
            let waited = now - last;
            // No delay is beyond the interval; a query a signal interrupted is made again
            // CANCEL_CHECK later.
            let most = self.interval.max(progress::CANCEL_CHECK);
            assert!(waited <= most, "{waited:?} between two queries");
        }
        self.last = Some(now);
        match self.queries.next() {
            None => Err(SourceError::Exhausted),
            Some(Query::Signal) => Err(SourceError::Signal),
            Some(Query::Reply {
                status,
                latency,
                jump,
            }) => {
                let wall = &self.time.wall_offset;
                wall.set(wall.get().saturating_add(*jump));
                self.time.elapsed.set(now + *latency);
                // The wait for the next query begins with the reply.
                self.last = Some(now + *latency);
                self.answered = Some((**status).clone());
                Ok((**status).clone())
            }
        }
    }

    fn interrupted(error: &SourceError) -> bool {
        matches!(error, SourceError::Signal)
    }
}

fn one_line(text: &str) -> bool {
    log::one_line(text) == text
}

fn run(script: &Script, style: Style) {
    let uuid = script
        .queries
        .iter()
        .find_map(|q| match q {
            Query::Reply { status, .. } => status.uuid.clone(),
            Query::Signal => None,
        })
        .unwrap_or_else(|| "00000000-0000-0000-0000-000000000000".into());
    let setup = script
        .bitmap
        .as_deref()
        .map(|drives| BitmapSetup::new(drives, script.template));
    let time = Time {
        start: Instant::now(),
        elapsed: Rc::new(Cell::new(Duration::ZERO)),
        wall_offset: Rc::new(Cell::new(0)),
    };
    let mut clock = time.clone();
    let mut state = StatusLoop::new(style, &uuid, clock.now_secs(), setup.as_ref());
    let options = progress::Options {
        interval: script.interval.unwrap_or(progress::DEFAULT_INTERVAL),
        resume_on_signal: script.resume,
    };
    let mut source = Source {
        queries: script.queries.iter(),
        time,
        last: None,
        // As the scheduler takes it.
        interval: options.interval.clamp(MIN_DELAY, MAX_INTERVAL),
        answered: None,
    };
    let log = |level: Level, line: &str| {
        // Every line of the loop is made of numbers and fixed words.
        assert_eq!(level, Level::Info);
        assert!(one_line(line), "{line:?}");
    };
    match progress::run(&mut state, &mut source, &mut clock, log, || false, options) {
        Ok(done) => {
            let last = source.answered.expect("a loop completes on a reply");
            assert_eq!(done.progress.transferred, last.transferred.unwrap_or(0));
            assert_eq!(done.progress.total, last.total.unwrap_or(0));
            assert_eq!(done.progress.finishing, last.finishing);
        }
        Err(LoopError::Poll(PollError::Backup(message))) => {
            assert!(one_line(&message), "{message:?}");
            assert!(message.len() <= 4 * log::MAX_PEER_TEXT + 3);
        }
        Err(LoopError::Poll(_) | LoopError::Source(_)) => {}
        Err(e @ (LoopError::Interrupted | LoopError::Cancelled)) => {
            panic!("nothing interrupts or cancels the simulated loop: {e:?}")
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let script = parse(data);
    for style in [Style::Seed, Style::Current] {
        run(&script, style);
    }
});
