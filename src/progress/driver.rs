//! The loop itself: query, observe, log, wait; over abstract sources, clocks and sinks so
//! that tests run it in simulated time.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::schedule::{Sample, Scheduler, DEFAULT_INTERVAL};
use super::status_loop::{PollError, Progress, StatusLoop, Step, Totals};
use super::BackupStatus;
use crate::log::Level;
use crate::wait::{self, Interrupted};

/// The longest sleep between two cancel checks.
pub const CANCEL_CHECK: Duration = Duration::from_millis(100);

/// Where replies come from; the real one runs a one-shot `query-backup`.
pub trait StatusSource {
    /// Why a query failed.
    type Error;
    /// One `query-backup` reply; `cancelled` is to be asked while the reply takes long.
    fn query(&mut self, cancelled: &mut dyn FnMut() -> bool) -> Result<BackupStatus, Self::Error>;
    /// True if `error` is a signal interrupting the query (nothing else went wrong).
    fn interrupted(_error: &Self::Error) -> bool {
        false
    }
}

/// Wall and monotonic time, and sleeping.
pub trait Clock {
    /// Wall-clock epoch seconds, as Perl's `time()`.
    fn now_secs(&self) -> i64;
    /// Monotonic time.
    fn now(&self) -> Instant;
    /// Sleeps until `deadline`, returning early on a signal.
    fn sleep_until(&mut self, deadline: Instant) -> Result<(), Interrupted>;
}

/// The real clock; sleeps with [`crate::wait::sleep_until`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_secs(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
        }
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&mut self, deadline: Instant) -> Result<(), Interrupted> {
        wait::sleep_until(deadline)
    }
}

/// Settings of [`run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Steady-state time between queries (the seed: 1 s).
    pub interval: Duration,
    /// What a signal does: `false` ends the loop with [`LoopError::Interrupted`] (the state
    /// survives, call again to resume); `true` asks the cancel check at once and goes on
    /// unless it says stop, as Perl's own `sleep` goes on after a handler returns.
    pub resume_on_signal: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            interval: DEFAULT_INTERVAL,
            resume_on_signal: false,
        }
    }
}

/// A loop that ended well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completed {
    /// The numbers of the final reply.
    pub progress: Progress,
    /// What qemu-server's current loop returns.
    pub totals: Totals,
}

/// Why [`run`] stopped without completing.
#[derive(Debug, thiserror::Error)]
pub enum LoopError<E> {
    /// The replies say the backup failed or is not ours.
    #[error(transparent)]
    Poll(#[from] PollError),
    /// A query failed.
    #[error(transparent)]
    Source(E),
    /// A signal arrived while waiting; the loop state is intact and `run` may be called again.
    #[error("backup status loop interrupted by signal")]
    Interrupted,
    /// The cancel check asked to stop.
    #[error("backup status loop cancelled")]
    Cancelled,
}

/// Polls `source` until the job ends, logging each line of `state` to `log`, and returns
/// the final numbers after logging the summary. `cancelled` is asked before every query
/// and at least every [`CANCEL_CHECK`] while waiting. Source errors end the loop at once;
/// signals too, unless `options.resume_on_signal`.
pub fn run<S, C, L, K>(
    state: &mut StatusLoop,
    source: &mut S,
    clock: &mut C,
    log: L,
    cancelled: K,
    options: Options,
) -> Result<Completed, LoopError<S::Error>>
where
    S: StatusSource,
    C: Clock,
    L: FnMut(Level, &str),
    K: FnMut() -> bool,
{
    let mut pacing = Pacing::new(options.interval);
    run_paced(state, &mut pacing, source, clock, log, cancelled, options)
}

/// When the loop queries next. Kept with the loop state by a caller that resumes the loop
/// after a signal ([`run_paced`]), so that a resumed loop keeps its pace instead of
/// querying at once each time.
#[derive(Debug, Clone)]
pub struct Pacing {
    scheduler: Scheduler,
    origin: Option<Instant>,
    next: Option<Instant>,
}

impl Pacing {
    /// A loop that has not queried yet; `interval` as [`Options::interval`].
    pub fn new(interval: Duration) -> Self {
        Pacing {
            scheduler: Scheduler::new(interval),
            origin: None,
            next: None,
        }
    }
}

/// [`run`] with the pace kept in `pacing` across calls: a call after
/// [`LoopError::Interrupted`] first waits out the delay the interrupted call had planned,
/// and a query a signal interrupts is made again no sooner than [`CANCEL_CHECK`] later
/// (a flood of signals cannot turn the loop into a flood of queries).
pub fn run_paced<S, C, L, K>(
    state: &mut StatusLoop,
    pacing: &mut Pacing,
    source: &mut S,
    clock: &mut C,
    mut log: L,
    mut cancelled: K,
    options: Options,
) -> Result<Completed, LoopError<S::Error>>
where
    S: StatusSource,
    C: Clock,
    L: FnMut(Level, &str),
    K: FnMut() -> bool,
{
    let origin = *pacing.origin.get_or_insert_with(|| clock.now());
    loop {
        if let Some(next) = pacing.next {
            wait(clock, next, &mut cancelled, options.resume_on_signal)?;
        }
        if cancelled() {
            return Err(LoopError::Cancelled);
        }
        let status = match source.query(&mut cancelled) {
            Ok(status) => status,
            Err(e) if S::interrupted(&e) => {
                // Query again, but not at once.
                pacing.next = Some(clock.now() + CANCEL_CHECK);
                if options.resume_on_signal {
                    continue;
                }
                return Err(LoopError::Source(e));
            }
            Err(e) => return Err(LoopError::Source(e)),
        };
        let observation = state.observe(&status, clock.now_secs());
        for line in &observation.lines {
            log(line.level, &line.text);
        }
        match observation.step {
            Step::Continue => {}
            Step::Failed(error) => return Err(error.into()),
            Step::Finished => {
                for line in state.summary(clock.now_secs()) {
                    log(line.level, &line.text);
                }
                return Ok(Completed {
                    progress: state.progress(),
                    totals: state.totals(),
                });
            }
        }
        let progress = state.progress();
        let now = clock.now();
        let delay = pacing.scheduler.next_delay(&Sample {
            at: now.saturating_duration_since(origin),
            transferred: progress.transferred,
            target: end_of(&status),
            finishing: status.finishing,
        });
        pacing.next = Some(now + delay);
    }
}

/// Where `transferred` will stop: the dirty part when QEMU reports a smaller one (whatever
/// the style's percent base), else the total.
fn end_of(status: &BackupStatus) -> u64 {
    let total = status.total.unwrap_or(0);
    status.dirty.map_or(total, |dirty| dirty.min(total))
}

/// Sleeps until `deadline` in slices of at most [`CANCEL_CHECK`], checking `cancelled`
/// after each (and at once after a signal when `resume_on_signal`).
fn wait<C: Clock, E>(
    clock: &mut C,
    deadline: Instant,
    cancelled: &mut impl FnMut() -> bool,
    resume_on_signal: bool,
) -> Result<(), LoopError<E>> {
    loop {
        let now = clock.now();
        if now >= deadline {
            return Ok(());
        }
        match clock.sleep_until(deadline.min(now + CANCEL_CHECK)) {
            Ok(()) => {}
            Err(Interrupted) if resume_on_signal => {}
            Err(Interrupted) => return Err(LoopError::Interrupted),
        }
        if cancelled() {
            return Err(LoopError::Cancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    use super::*;
    use crate::progress::Style;

    const UUID: &str = "1c6b2a1e-0d3c-4b8e-9a57-2f6f0e0d9c11";
    const EPOCH: i64 = 1_700_000_000;
    /// The synthetic backup: 9.5 GB at 1 GB/s, a quarter of it zero, done at 9.5 s.
    const TOTAL: u64 = 9_500_000_000;

    /// Simulated time, shared by the clock and the source.
    type Elapsed = Rc<Cell<Duration>>;

    /// A clock whose sleeps advance simulated time; optionally interrupted once, or (with
    /// `flood`) every sleep cut short by a signal after that long.
    struct FakeClock {
        base: Instant,
        elapsed: Elapsed,
        interrupt_at: Option<Duration>,
        flood: Option<Duration>,
        slices: Vec<Duration>,
    }

    impl FakeClock {
        fn new(elapsed: &Elapsed) -> Self {
            FakeClock {
                base: Instant::now(),
                elapsed: elapsed.clone(),
                interrupt_at: None,
                flood: None,
                slices: Vec::new(),
            }
        }
    }

    impl Clock for FakeClock {
        fn now_secs(&self) -> i64 {
            EPOCH + self.elapsed.get().as_secs() as i64
        }

        fn now(&self) -> Instant {
            self.base + self.elapsed.get()
        }

        fn sleep_until(&mut self, deadline: Instant) -> Result<(), Interrupted> {
            let target = deadline - self.base;
            self.slices.push(target - self.elapsed.get());
            if let Some(at) = self.interrupt_at.filter(|&at| at < target) {
                self.interrupt_at = None;
                self.elapsed.set(at);
                return Err(Interrupted);
            }
            if let Some(cut) = self.flood.map(|f| self.elapsed.get() + f) {
                if cut < target {
                    self.elapsed.set(cut);
                    return Err(Interrupted);
                }
            }
            self.elapsed.set(target);
            Ok(())
        }
    }

    #[derive(Debug, PartialEq, thiserror::Error)]
    #[error("monitor gone")]
    struct Gone;

    /// Replies of the synthetic backup at the simulated time; counts queries.
    struct Synthetic {
        elapsed: Elapsed,
        queries: usize,
        fail_at: Option<usize>,
        uuid: &'static str,
    }

    impl Synthetic {
        fn new(elapsed: &Elapsed) -> Self {
            Synthetic {
                elapsed: elapsed.clone(),
                queries: 0,
                fail_at: None,
                uuid: UUID,
            }
        }
    }

    impl StatusSource for Synthetic {
        type Error = Gone;

        fn query(&mut self, _: &mut dyn FnMut() -> bool) -> Result<BackupStatus, Gone> {
            self.queries += 1;
            if self.fail_at == Some(self.queries) {
                return Err(Gone);
            }
            let ms = self.elapsed.get().as_millis() as u64;
            let transferred = (ms * 1_000_000).min(TOTAL);
            let state = if transferred == TOTAL {
                "done"
            } else {
                "active"
            };
            Ok(BackupStatus {
                status: Some(state.into()),
                uuid: Some(self.uuid.into()),
                total: Some(TOTAL),
                transferred: Some(transferred),
                zero_bytes: Some(transferred / 4),
                ..Default::default()
            })
        }
    }

    /// A fresh simulated time with the synthetic backup and a clock on it.
    fn synthetic() -> (Elapsed, Synthetic, FakeClock) {
        let elapsed = Elapsed::default();
        let (source, clock) = (Synthetic::new(&elapsed), FakeClock::new(&elapsed));
        (elapsed, source, clock)
    }

    /// Runs the synthetic backup; returns the result and the logged lines.
    fn run_synthetic(
        style: Style,
        source: &mut Synthetic,
        clock: &mut FakeClock,
        cancelled: impl FnMut() -> bool,
    ) -> (Result<Completed, LoopError<Gone>>, Vec<String>) {
        let mut state = StatusLoop::new(style, UUID, clock.now_secs(), None);
        let lines = RefCell::new(Vec::new());
        let log = |level: Level, text: &str| {
            assert_eq!(level, Level::Info);
            lines.borrow_mut().push(text.to_string());
        };
        let result = run(
            &mut state,
            source,
            clock,
            log,
            cancelled,
            Options::default(),
        );
        (result, lines.into_inner())
    }

    #[test]
    fn seed_run_logs_every_line_and_sees_the_end_at_once() {
        let (elapsed, mut source, mut clock) = synthetic();
        let checks = RefCell::new(Vec::new());
        let cancelled = || {
            checks.borrow_mut().push(elapsed.get());
            false
        };
        let (result, lines) = run_synthetic(Style::Seed, &mut source, &mut clock, cancelled);
        // Lines at 3, 6 and 9 s (1 GB/s read, 750 MB/s written), then the end at 9.5 s:
        // 0.5 GB in the same wall second, which counts as one.
        assert_eq!(
            lines,
            [
                "status: 31% (3000000000/9500000000), sparse 7% (750000000), duration 3, read/write 1000/750 MB/s",
                "status: 63% (6000000000/9500000000), sparse 15% (1500000000), duration 6, read/write 1000/750 MB/s",
                "status: 94% (9000000000/9500000000), sparse 23% (2250000000), duration 9, read/write 1000/750 MB/s",
                "status: 100% (9500000000/9500000000), sparse 25% (2375000000), duration 9, read/write 500/375 MB/s",
                "transferred 9500 MB in 9 seconds (1055 MB/s)",
            ]
        );
        let completed = result.unwrap();
        assert_eq!(completed.progress.transferred, TOTAL);
        assert_eq!(completed.progress.percent, 100);
        // Queries at 0..=9 s and one at the predicted end.
        assert_eq!(source.queries, 11);
        let seen = elapsed.get().as_millis();
        assert!((9_500..9_510).contains(&seen), "end seen at {seen} ms");
        assert!(clock.slices.iter().all(|&s| s <= CANCEL_CHECK));
        let checks = checks.into_inner();
        assert!(checks.windows(2).all(|w| w[1] - w[0] <= CANCEL_CHECK));
    }

    #[test]
    fn current_run_logs_every_line() {
        let (_elapsed, mut source, mut clock) = synthetic();
        let (result, lines) = run_synthetic(Style::Current, &mut source, &mut clock, || false);
        assert_eq!(
            lines,
            [
                " 31% (2.8 GiB of 8.8 GiB) in 3s, read: 953.7 MiB/s, write: 715.3 MiB/s",
                " 63% (5.6 GiB of 8.8 GiB) in 6s, read: 953.7 MiB/s, write: 715.3 MiB/s",
                " 94% (8.4 GiB of 8.8 GiB) in 9s, read: 953.7 MiB/s, write: 715.3 MiB/s",
                "100% (8.8 GiB of 8.8 GiB) in 9s, read: 476.8 MiB/s, write: 357.6 MiB/s",
                "backup is sparse: 2.21 GiB (25%) total zero data",
                "transferred 8.85 GiB in 9 seconds (1006.7 MiB/s)",
            ]
        );
        let completed = result.unwrap();
        assert_eq!(
            completed.totals,
            Totals {
                total: TOTAL,
                reused: None
            }
        );
    }

    #[test]
    fn cancel_check_stops_the_loop_while_waiting() {
        let (elapsed, mut source, mut clock) = synthetic();
        let cancelled = || elapsed.get() >= Duration::from_millis(2_350);
        let (result, lines) = run_synthetic(Style::Seed, &mut source, &mut clock, cancelled);
        assert!(matches!(result, Err(LoopError::Cancelled)), "{result:?}");
        assert!(lines.is_empty());
        assert_eq!(source.queries, 3);
        // Noticed at the end of the 100 ms slice it fell in.
        assert_eq!(elapsed.get(), Duration::from_millis(2_400));
    }

    #[test]
    fn source_error_ends_the_loop_at_once() {
        let (elapsed, mut source, mut clock) = synthetic();
        source.fail_at = Some(3);
        let (result, _) = run_synthetic(Style::Seed, &mut source, &mut clock, || false);
        let error = result.unwrap_err();
        assert!(matches!(error, LoopError::Source(Gone)));
        assert_eq!(error.to_string(), "monitor gone");
        assert_eq!(source.queries, 3);
        assert_eq!(elapsed.get(), Duration::from_secs(2));
    }

    #[test]
    fn poll_error_ends_the_loop_with_its_text() {
        let (_elapsed, mut source, mut clock) = synthetic();
        source.uuid = "another-job";
        let (result, _) = run_synthetic(Style::Current, &mut source, &mut clock, || false);
        let error = result.unwrap_err();
        assert!(matches!(error, LoopError::Poll(PollError::UnexpectedUuid)));
        assert_eq!(error.to_string(), "got unexpected uuid");
        assert_eq!(source.queries, 1);
    }

    #[test]
    fn signal_returns_at_once_and_the_loop_can_resume() {
        let (elapsed, mut source, mut clock) = synthetic();
        clock.interrupt_at = Some(Duration::from_millis(1_550));
        let mut state = StatusLoop::new(Style::Seed, UUID, clock.now_secs(), None);
        let mut lines = Vec::new();
        let mut log = |_: Level, text: &str| lines.push(text.to_string());
        let mut run_on = |state: &mut _, source: &mut _, clock: &mut _| {
            run(state, source, clock, &mut log, || false, Options::default())
        };
        let first = run_on(&mut state, &mut source, &mut clock);
        assert!(matches!(first, Err(LoopError::Interrupted)), "{first:?}");
        assert_eq!(elapsed.get(), Duration::from_millis(1_550));
        assert_eq!(source.queries, 2);

        let again = run_on(&mut state, &mut source, &mut clock);
        assert_eq!(again.unwrap().progress.transferred, TOTAL);
        assert_eq!(
            lines.last().unwrap(),
            "transferred 9500 MB in 9 seconds (1055 MB/s)"
        );
        assert_eq!(
            LoopError::<Gone>::Interrupted.to_string(),
            "backup status loop interrupted by signal"
        );
    }

    #[test]
    fn with_resume_on_signal_a_signal_asks_the_cancel_check_and_goes_on() {
        let (elapsed, mut source, mut clock) = synthetic();
        clock.interrupt_at = Some(Duration::from_millis(1_550));
        let mut state = StatusLoop::new(Style::Seed, UUID, clock.now_secs(), None);
        let asked_at = RefCell::new(Vec::new());
        let cancelled = || {
            asked_at.borrow_mut().push(elapsed.get());
            false
        };
        let options = Options {
            resume_on_signal: true,
            ..Options::default()
        };
        let done = run(
            &mut state,
            &mut source,
            &mut clock,
            |_, _| {},
            cancelled,
            options,
        );
        assert_eq!(done.unwrap().progress.transferred, TOTAL);
        // Asked right at the signal, then on as before.
        assert!(asked_at.borrow().contains(&Duration::from_millis(1_550)));
        // The same queries as without the signal.
        assert_eq!(source.queries, 11);
    }

    #[test]
    fn system_clock_returns_for_a_past_deadline() {
        let mut clock = SystemClock;
        assert_eq!(clock.sleep_until(clock.now()), Ok(()));
        assert!(clock.now_secs() > EPOCH);
    }

    #[test]
    fn a_loop_resumed_after_each_signal_keeps_its_pace() {
        // A no-op handler signalled every 10 ms.
        let elapsed: Elapsed = Rc::new(Cell::new(Duration::ZERO));
        let mut clock = FakeClock::new(&elapsed);
        clock.flood = Some(Duration::from_millis(10));
        let mut source = Synthetic::new(&elapsed);
        let mut state = StatusLoop::new(Style::Seed, UUID, EPOCH, None);
        let mut pacing = Pacing::new(DEFAULT_INTERVAL);
        let options = Options::default();
        let mut resumes = 0;
        // The caller resumes after every interruption, as a Perl caller whose handler
        // returned does, until the backup is done at 9.5 s.
        loop {
            let outcome = run_paced(
                &mut state,
                &mut pacing,
                &mut source,
                &mut clock,
                |_, _| {},
                || false,
                options,
            );
            match outcome {
                Ok(_) => break,
                Err(LoopError::Interrupted) => resumes += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(resumes > 500, "the flood interrupted {resumes} times");
        // The pace of a loop never interrupted: the scheduler's queries over 9.5 s, not
        // one per resume.
        let mut quiet_clock = FakeClock::new(&Rc::new(Cell::new(Duration::ZERO)));
        let quiet_elapsed = quiet_clock.elapsed.clone();
        let mut quiet = Synthetic::new(&quiet_elapsed);
        let mut quiet_state = StatusLoop::new(Style::Seed, UUID, EPOCH, None);
        run(
            &mut quiet_state,
            &mut quiet,
            &mut quiet_clock,
            |_, _| {},
            || false,
            options,
        )
        .unwrap();
        assert!(
            source.queries <= quiet.queries + 1,
            "{} queries with the flood, {} without",
            source.queries,
            quiet.queries
        );
    }
}
