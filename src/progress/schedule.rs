//! When to query next. The seed sleeps one second between queries, so it notices the end
//! half a second late on average; this schedule predicts the end from the observed rate and
//! queries right then, at a bounded cost in extra queries.
//!
//! Rules, in order:
//! - counts in steps: pve-qemu publishes a VMA job's `transferred` in bursts, 1 MiB as the
//!   job is created, then 1 MiB + k * 2 MiB once the copy got there, so a count lags the
//!   copy by up to one step and the first one is ahead of it. When at least two different
//!   counts below the target have been seen and all of them are odd multiples of the same
//!   power of two `h` from 64 KiB to 2 MiB (`MIN_HALF_STEP`, `MAX_HALF_STEP`), the counts
//!   are taken as steps of `2h`: the copy is estimated half a step beyond the count shown
//!   (at most half way to the target), and a count of exactly `h` (the first step) as 0.
//!   Other counts (smooth progress, PBS chunks, a resumed loop) are taken as shown;
//! - the rate is that of the estimated copy over the samples of the last
//!   `WINDOW_INTERVALS` intervals, the time left is the estimated rest at that rate;
//! - a query at a predicted end that finds the job still running is a miss. After a miss,
//!   with a rate and the count below the target, the end is aimed at again from the fresh
//!   sample, at most `REAIMS` (2) times: with steps first at the middle of the time the last
//!   step can still take, then at its end (the count shown taken as the copy's), without
//!   steps at the end predicted now. After that, or without a rate, the delays grow
//!   geometrically from [`MIN_DELAY`] up to the interval. Both last until the job is far
//!   from its end again (predicted end two intervals or more away);
//! - with a rate and the end predicted within one interval (and no miss), query at the end;
//! - near the end without a rate to predict from (copy complete, `finishing`, or ≥ 99 %
//!   and stalled), the same geometric back-off;
//! - otherwise one query per interval.
//!
//! A token bucket bounds the whole: one query per interval on average, plus at most
//! [`BURST`] extra queries over a run, whatever the rules ask for. No delay is below
//! [`MIN_DELAY`] (at most 20 queries per second) or beyond the interval (the end is never
//! noticed later than with one query per interval).

use std::collections::VecDeque;
use std::time::Duration;

/// The shortest delay between two queries.
pub const MIN_DELAY: Duration = Duration::from_millis(50);
/// The steady-state interval of the seed.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Queries a run may make beyond one per interval.
pub const BURST: u32 = 8;
/// The longest interval: beyond it a backup end would go unnoticed for too long.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// The smallest half step taken for steps: below it, a count is as good as exact.
const MIN_HALF_STEP: u64 = 64 << 10;
/// The largest half step taken for steps (pve-qemu's VMA bursts have 1 MiB).
const MAX_HALF_STEP: u64 = 2 << 20;
/// How often the end is aimed at again after a miss before backing off.
const REAIMS: u32 = 2;
/// Samples older than this many intervals do not count for the rate.
const WINDOW_INTERVALS: u32 = 3;

/// What the scheduler needs of one `query-backup` reply of an active job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Monotonic time of the reply, since the loop started.
    pub at: Duration,
    /// Bytes transferred.
    pub transferred: u64,
    /// Bytes the job will have transferred at its end.
    pub target: u64,
    /// The jobs are done and the writer is being closed.
    pub finishing: bool,
}

/// What the counts seen so far say about steps (see the module's rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Steps {
    /// No count below the target above 0 seen yet.
    Unknown,
    /// Every such count is an odd multiple of `half`; `distinct` says whether two
    /// different ones were seen.
    Candidate {
        half: u64,
        first: u64,
        distinct: bool,
    },
    /// The counts fit no step pattern: they are taken as shown for the rest of the run.
    None,
}

impl Steps {
    fn see(self, transferred: u64, target: u64) -> Steps {
        if transferred == 0 || transferred >= target {
            return self;
        }
        // The largest power of two dividing the count: it is an odd multiple of that.
        let half = transferred & transferred.wrapping_neg();
        match self {
            Steps::Unknown => Steps::Candidate {
                half,
                first: transferred,
                distinct: false,
            },
            Steps::Candidate {
                half: h,
                first,
                distinct,
            } if h == half => Steps::Candidate {
                half,
                first,
                distinct: distinct || first != transferred,
            },
            _ => Steps::None,
        }
    }

    /// The half step, once the pattern is established.
    fn half(self) -> Option<u64> {
        match self {
            Steps::Candidate {
                half,
                distinct: true,
                ..
            } if (MIN_HALF_STEP..=MAX_HALF_STEP).contains(&half) => Some(half),
            _ => None,
        }
    }
}

/// Decides the delay before each next query.
#[derive(Debug, Clone)]
pub struct Scheduler {
    interval: Duration,
    /// Token bucket in units of time: a query costs one interval, time refills it.
    credit: Duration,
    last_at: Option<Duration>,
    /// Recent (time, transferred) pairs, oldest first.
    window: VecDeque<(Duration, u64)>,
    steps: Steps,
    predicted_end: Option<Duration>,
    missed: bool,
    /// Aims at the end since the last miss-free stretch.
    reaims: u32,
    backoff: Duration,
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler::new(DEFAULT_INTERVAL)
    }
}

impl Scheduler {
    /// A scheduler querying at most once per `interval` in steady state (clamped to
    /// [`MIN_DELAY`]..=[`MAX_INTERVAL`]).
    pub fn new(interval: Duration) -> Self {
        let interval = interval.clamp(MIN_DELAY, MAX_INTERVAL);
        Scheduler {
            interval,
            // A full bucket.
            credit: interval * (BURST + 1),
            last_at: None,
            window: VecDeque::new(),
            steps: Steps::Unknown,
            predicted_end: None,
            missed: false,
            reaims: 0,
            backoff: MIN_DELAY,
        }
    }

    /// The steady-state interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Records the reply `sample` (the job is still active) and returns how long to wait
    /// before the next query.
    pub fn next_delay(&mut self, sample: &Sample) -> Duration {
        self.charge(sample.at);
        self.remember(sample);
        let wanted = self.policy(sample);
        // Without credit, wait until one interval's worth has accrued.
        let budget = self.interval.saturating_sub(self.credit);
        wanted.max(budget).max(MIN_DELAY)
    }

    /// Pays one interval of credit for the query that produced a sample at `at`.
    fn charge(&mut self, at: Duration) {
        let cap = self.interval * (BURST + 1);
        let earned = self
            .last_at
            .map_or(Duration::ZERO, |last| at.saturating_sub(last));
        self.credit = self
            .credit
            .saturating_add(earned)
            .min(cap)
            .saturating_sub(self.interval);
        self.last_at = Some(at);
    }

    fn remember(&mut self, sample: &Sample) {
        // A counter that went backwards starts a new rate history.
        if self
            .window
            .back()
            .is_some_and(|&(_, t)| t > sample.transferred)
        {
            self.window.clear();
        }
        self.window.push_back((sample.at, sample.transferred));
        let horizon = sample.at.saturating_sub(self.interval * WINDOW_INTERVALS);
        while self.window.len() > 2 && self.window.front().is_some_and(|&(at, _)| at < horizon) {
            self.window.pop_front();
        }
        self.steps = self.steps.see(sample.transferred, sample.target);
    }

    /// Where the copy probably is when the count `shown` is published (module rules).
    fn copied(&self, shown: u64, target: u64) -> u64 {
        match self.steps.half() {
            Some(half) if shown == half => 0,
            Some(half) => shown.saturating_add(half.min(target.saturating_sub(shown) / 2)),
            None => shown,
        }
    }

    /// Bytes per second of the estimated copy over the window, if it progressed.
    fn rate(&self, target: u64) -> Option<f64> {
        let (&(t0, b0), &(t1, b1)) = (self.window.front()?, self.window.back()?);
        let span = t1.saturating_sub(t0).as_secs_f64();
        let bytes = self
            .copied(b1, target)
            .saturating_sub(self.copied(b0, target)) as f64;
        (span > 0.0 && bytes > 0.0).then(|| bytes / span)
    }

    /// Time for `bytes` at `rate`, rounded up to whole milliseconds so that the query
    /// does not come just before the end.
    fn time_for(bytes: u64, rate: f64) -> Duration {
        let millis = (bytes as f64 / rate * 1000.0).ceil();
        Duration::from_millis(millis.min(u64::MAX as f64) as u64)
    }

    /// Time left until `sample.target` at the rate over the window, if there is progress
    /// and the count is below the target.
    fn eta(&self, sample: &Sample) -> Option<Duration> {
        if sample.transferred >= sample.target {
            return None;
        }
        let rate = self.rate(sample.target)?;
        let rest = sample
            .target
            .saturating_sub(self.copied(sample.transferred, sample.target));
        Some(Self::time_for(rest, rate))
    }

    /// The delay of the next aim after a miss, if the rules allow one.
    fn reaim(&mut self, sample: &Sample) -> Option<Duration> {
        if self.reaims >= REAIMS || sample.transferred >= sample.target {
            return None;
        }
        let rate = self.rate(sample.target)?;
        self.reaims += 1;
        // The count shown is where the copy is at the latest end; a step later at the
        // earliest.
        let rest = sample.target - sample.transferred;
        let latest = Self::time_for(rest, rate);
        Some(match self.steps.half() {
            Some(half) if self.reaims < REAIMS => {
                let earliest = Self::time_for(rest.saturating_sub(2 * half), rate);
                (earliest + latest) / 2
            }
            _ => latest,
        })
    }

    fn policy(&mut self, sample: &Sample) -> Duration {
        let now = sample.at;
        if self.predicted_end.is_some_and(|end| now >= end) {
            self.missed = true;
            self.predicted_end = None;
        }
        let eta = self.eta(sample);
        if eta.is_some_and(|e| e >= self.interval * 2) && !sample.finishing {
            self.missed = false;
            self.reaims = 0;
            self.predicted_end = None;
        }
        let near_end = sample.finishing
            || sample.transferred >= sample.target
            || u128::from(sample.transferred) * 100 >= u128::from(sample.target) * 99;
        if self.missed {
            if let Some(delay) = self.reaim(sample) {
                // An aim beyond the interval would notice the end later than one query per
                // interval does: while `finishing` keeps the miss, a slow rate and a far
                // target made it hours.
                let delay = delay.clamp(MIN_DELAY, self.interval);
                self.predicted_end = Some(now.saturating_add(delay));
                return delay;
            }
        }
        match eta {
            Some(eta) if eta < self.interval && !self.missed => {
                self.predicted_end = Some(now.saturating_add(eta));
                eta
            }
            // A known rate beats the percent: a 10 TB disk has 100 GB left at 99 %.
            _ if self.missed || (eta.is_none() && near_end) => {
                let delay = self.backoff;
                self.backoff = (self.backoff * 2).min(self.interval);
                delay
            }
            _ => {
                self.backoff = MIN_DELAY;
                self.interval
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic backup in simulated milliseconds.
    struct Backup {
        target: u64,
        /// Bytes transferred at a time.
        transferred: Box<dyn Fn(u64) -> u64>,
        /// When the copy is complete (`finishing` from then on).
        copy_end: u64,
        /// When `query-backup` first says `done`.
        done: u64,
    }

    impl Backup {
        /// Constant rate: `target` bytes in `copy_ms`, done `finishing_ms` later.
        fn constant(target: u64, copy_ms: u64, finishing_ms: u64) -> Self {
            let transferred = move |t: u64| {
                (u128::from(target) * u128::from(t.min(copy_ms)) / u128::from(copy_ms)) as u64
            };
            Backup {
                target,
                transferred: Box::new(transferred),
                copy_end: copy_ms,
                done: copy_ms + finishing_ms,
            }
        }
    }

    struct Run {
        queries: u64,
        /// Time from `done` to the query that saw it.
        latency: u64,
        shortest: Duration,
    }

    /// Polls `backup` as the driver does; each query takes `cost_ms`.
    fn simulate(backup: &Backup, cost_ms: u64) -> Run {
        let mut scheduler = Scheduler::default();
        let (mut t, mut queries, mut shortest) = (0u64, 0u64, Duration::MAX);
        loop {
            queries += 1;
            assert!(queries < 100_000, "runaway");
            if t >= backup.done {
                return Run {
                    queries,
                    latency: t - backup.done,
                    shortest,
                };
            }
            let delay = scheduler.next_delay(&Sample {
                at: Duration::from_millis(t),
                transferred: (backup.transferred)(t),
                target: backup.target,
                finishing: t >= backup.copy_end,
            });
            shortest = shortest.min(delay);
            t += delay.as_millis() as u64 + cost_ms;
        }
    }

    /// The bound of the issue: at most one query per second plus a small constant.
    fn assert_bounded(run: &Run, backup: &Backup) {
        let secs = (backup.done + run.latency) / 1000;
        assert!(
            run.queries <= secs + 10,
            "{} queries in {secs} s",
            run.queries
        );
        assert!(run.shortest >= MIN_DELAY, "delay {:?}", run.shortest);
    }

    #[test]
    fn constant_rate_end_is_seen_at_once() {
        let mut latencies = Vec::new();
        for (i, copy_ms) in [2_500, 7_250, 10_370, 33_333, 59_999, 120_500, 601_001]
            .into_iter()
            .enumerate()
        {
            for target in [3 << 30, 34_359_738_368, 1_000_003] {
                for cost_ms in [0, 3] {
                    let backup = Backup::constant(target, copy_ms + i as u64 * 17, 0);
                    let run = simulate(&backup, cost_ms);
                    assert_bounded(&run, &backup);
                    latencies.push(run.latency);
                }
            }
        }
        latencies.sort_unstable();
        let median = latencies[latencies.len() / 2];
        assert!(median <= 50, "median latency {median} ms: {latencies:?}");
        assert!(latencies.iter().all(|&l| l <= 250), "{latencies:?}");
    }

    #[test]
    fn short_finishing_phase_costs_a_few_quick_queries() {
        for finishing_ms in [10, 40, 120, 300] {
            let backup = Backup::constant(8 << 30, 20_400, finishing_ms);
            let run = simulate(&backup, 2);
            assert_bounded(&run, &backup);
            // Back-off from 50 ms: a miss costs at most about as long as the wait so far.
            assert!(
                run.latency <= finishing_ms + 60,
                "{finishing_ms}: {}",
                run.latency
            );
        }
    }

    #[test]
    fn long_finishing_phase_settles_at_the_interval() {
        let backup = Backup::constant(8 << 30, 20_000, 45_000);
        let run = simulate(&backup, 2);
        assert_bounded(&run, &backup);
        assert!(run.latency <= 1_000 + 2, "{}", run.latency);
        // 20 s of copy plus 45 s of waiting: about one query per second.
        assert!(run.queries <= 65 + 10, "{}", run.queries);
    }

    /// Bytes over time, linear between `(ms, bytes)` points, flat after the last.
    fn piecewise(points: &'static [(u64, u64)]) -> Box<dyn Fn(u64) -> u64> {
        Box::new(move |t| {
            let i = points.partition_point(|&(at, _)| at <= t);
            match (points.get(i.wrapping_sub(1)), points.get(i)) {
                (Some(&(t0, b0)), Some(&(t1, b1))) => {
                    b0 + ((u128::from(b1 - b0) * u128::from(t - t0)) / u128::from(t1 - t0)) as u64
                }
                (Some(&(_, b)), None) => b,
                _ => 0,
            }
        })
    }

    fn run_piecewise(points: &'static [(u64, u64)], cost_ms: u64) -> Run {
        let &(end, target) = points.last().unwrap();
        let backup = Backup {
            target,
            transferred: piecewise(points),
            copy_end: end,
            done: end,
        };
        let run = simulate(&backup, cost_ms);
        assert_bounded(&run, &backup);
        run
    }

    const G: u64 = 1 << 30;
    const M: u64 = 1 << 20;

    #[test]
    fn rate_changes_keep_the_bound() {
        // 1 GiB/s for 20 s, then 100 MiB/s for the last GiB; and the other way round.
        let slower = run_piecewise(&[(0, 0), (20_000, 20 * G), (30_240, 21 * G)], 1);
        let faster = run_piecewise(
            &[(0, 0), (30_000, 3000 * M), (40_000, 3000 * M + 10 * G)],
            1,
        );
        for run in [slower, faster] {
            assert!(run.latency <= 1_000, "{}", run.latency);
        }
    }

    #[test]
    fn a_slowdown_just_before_the_predicted_end_backs_off() {
        // 100 MiB/s for 10 s, then 1 MiB/s for the last 2 MiB: the fast rate predicts the
        // end at 10.02 s, the job ends at 12 s.
        let run = run_piecewise(&[(0, 0), (10_000, 1000 * M), (12_000, 1002 * M)], 0);
        assert!(run.latency <= 1_000, "{}", run.latency);
    }

    #[test]
    fn stalls_keep_the_bound() {
        // 60 s without progress half way, then 30 s at 99.5 %.
        let run = run_piecewise(
            &[
                (0, 0),
                (10_000, 10 * G),
                (70_000, 10 * G),
                (79_900, 19_900 * M),
                (109_900, 19_900 * M),
                (110_000, 20_000 * M),
            ],
            1,
        );
        assert!(run.latency <= 1_000, "{}", run.latency);
    }

    /// Found by the `query_backup` fuzz target: after a miss, a `finishing` reply with
    /// little progress and a far target was aimed at 15 days later.
    #[test]
    fn an_aim_after_a_miss_is_never_beyond_the_interval() {
        let mut scheduler = Scheduler::default();
        for (at, transferred, target, finishing) in [
            (0, 0, 1_000, false),
            // The end predicted 0.11 s ahead, and missed.
            (1_000, 900, 1_000, false),
            (1_200, 901, 1_000_000_000, true),
            (2_200, 950, 1_000_000_000, true),
        ] {
            let delay = scheduler.next_delay(&Sample {
                at: Duration::from_millis(at),
                transferred,
                target,
                finishing,
            });
            assert!(delay <= DEFAULT_INTERVAL, "{delay:?} at {at} ms");
        }
    }

    #[test]
    fn steady_state_is_one_query_per_interval() {
        let mut scheduler = Scheduler::new(Duration::from_secs(2));
        for s in 0..20u64 {
            let delay = scheduler.next_delay(&Sample {
                at: Duration::from_secs(2 * s),
                transferred: s << 30,
                target: 100 << 30,
                finishing: false,
            });
            assert_eq!(delay, Duration::from_secs(2));
        }
    }

    #[test]
    fn waiting_forever_settles_at_the_interval() {
        // Always finishing: 50 ms, 100 ms, ... then the interval.
        let mut scheduler = Scheduler::default();
        let mut t = Duration::ZERO;
        let mut delays = Vec::new();
        while t < Duration::from_secs(30) {
            let delay = scheduler.next_delay(&Sample {
                at: t,
                transferred: 10,
                target: 10,
                finishing: true,
            });
            delays.push(delay.as_millis());
            t += delay;
        }
        assert_eq!(delays[..7], [50, 100, 200, 400, 800, 1000, 1000]);
        assert!(delays.len() <= 30 + 5, "{}", delays.len());
        assert_eq!(Scheduler::new(Duration::ZERO).interval(), MIN_DELAY);
    }

    #[test]
    fn credit_runs_out_for_a_caller_that_queries_too_often() {
        // Samples alternate between "steady" (resets the back-off) and "finishing" (wants
        // 50 ms), and the caller queries every 50 ms whatever it is told.
        let mut scheduler = Scheduler::default();
        let finishing_delays: Vec<u128> = (0..16u64)
            .map(|i| {
                let sample = Sample {
                    at: Duration::from_millis(50 * i),
                    transferred: 0,
                    target: 100,
                    finishing: i % 2 == 1,
                };
                scheduler.next_delay(&sample).as_millis()
            })
            .skip(1)
            .step_by(2)
            .collect();
        // Credit: 8 s after the first query, 0.95 s less per query, exhausted by the 10th.
        assert_eq!(finishing_delays, [50, 50, 50, 50, 1000, 1000, 1000, 1000]);
    }

    #[test]
    fn odd_samples_do_not_panic() {
        let mut scheduler = Scheduler::new(Duration::MAX);
        assert_eq!(scheduler.interval(), MAX_INTERVAL);
        for (at, transferred, target) in [
            (Duration::MAX, 5, 10),
            (Duration::ZERO, 7, 10),
            (Duration::MAX, u64::MAX, 1),
            (Duration::from_secs(1), 0, u64::MAX),
            (Duration::from_secs(2), u64::MAX - 1, u64::MAX),
        ] {
            let delay = scheduler.next_delay(&Sample {
                at,
                transferred,
                target,
                finishing: false,
            });
            assert!((MIN_DELAY..=MAX_INTERVAL).contains(&delay), "{delay:?}");
        }
    }

    /// pve-qemu's VMA count for a copy at `copied` of `target` bytes: 1 MiB as the job is
    /// created, then 1 MiB + k * 2 MiB once the copy got there, the target at the end.
    fn vma_shown(copied: u64, target: u64) -> u64 {
        if copied >= target {
            target
        } else if copied < M {
            M.min(target)
        } else {
            M + (copied - M) / (2 * M) * (2 * M)
        }
    }

    /// A VMA backup of `target` bytes copied at `mib_per_s`, as pve-qemu shows it; the job
    /// is `done` once the copy is complete (VMA jobs report no `finishing`).
    fn bursts(target: u64, mib_per_s: u64) -> Backup {
        let copy_ms = (target * 1000).div_ceil(mib_per_s * M);
        let copied = move |t: u64| (u128::from(mib_per_s * M) * u128::from(t) / 1000) as u64;
        Backup {
            target,
            transferred: Box::new(move |t| vma_shown(copied(t).min(target), target)),
            copy_end: copy_ms,
            done: copy_ms,
        }
    }

    /// Queries of the seed's loop (query, sleep one second) until it sees `done`.
    fn seed_queries(done: u64, cost_ms: u64) -> u64 {
        (0..).find(|k| k * (1000 + cost_ms) >= done).unwrap() + 1
    }

    #[test]
    fn steps_are_taken_from_pve_qemu_bursts_only() {
        let seen = |counts: &[u64]| {
            counts
                .iter()
                .fold(Steps::Unknown, |steps, &c| steps.see(c, 100 * M))
                .half()
        };
        // 1 MiB, then 1 MiB + k * 2 MiB: steps of 2 MiB, once two different counts agree.
        assert_eq!(seen(&[M]), None);
        assert_eq!(seen(&[M, M]), None);
        assert_eq!(seen(&[M, 15 * M]), Some(M));
        assert_eq!(seen(&[0, M, 15 * M, 31 * M, 100 * M]), Some(M));
        // Smooth counts, PBS's 4 MiB chunks, a mixture: taken as shown.
        assert_eq!(seen(&[16 * M, 20 * M + 512 * 1024]), None);
        assert_eq!(seen(&[4 * M, 12 * M]), None);
        assert_eq!(seen(&[8 * M, 24 * M]), None);
        assert_eq!(seen(&[M, 15 * M, 16 * M, 17 * M]), None);
        assert_eq!(seen(&[1_000_003, 3_000_001]), None);
        // Odd multiples of 64 KiB agree, and the error is at most 64 KiB then.
        assert_eq!(seen(&[65_536, 3 * 65_536]), Some(65_536));
        assert_eq!(seen(&[32_768, 3 * 32_768]), None);

        let mut scheduler = Scheduler::default();
        for (s, count) in [M, 15 * M].into_iter().enumerate() {
            scheduler.next_delay(&Sample {
                at: Duration::from_secs(s as u64),
                transferred: count,
                target: 20 * M,
                finishing: false,
            });
        }
        assert_eq!(scheduler.copied(M, 20 * M), 0);
        assert_eq!(scheduler.copied(15 * M, 20 * M), 16 * M);
        assert_eq!(scheduler.copied(19 * M, 20 * M), 19 * M + M / 2);
        assert_eq!(scheduler.copied(20 * M, 20 * M), 20 * M);
    }

    #[test]
    fn bursts_of_20_mib_at_16_mib_per_s() {
        // Counts 1 MiB at 0 s, 15 MiB at 1 s: the copy is at 16 MiB, 16 MiB/s, 4 MiB left.
        // Taken as shown, the rate was 14 MiB/s and the end predicted 107 ms late.
        let backup = bursts(20 * M, 16);
        assert_eq!(backup.done, 1_250);
        let mut scheduler = Scheduler::default();
        let mut delays = Vec::new();
        let mut t = 0;
        while t < backup.done {
            let delay = scheduler.next_delay(&Sample {
                at: Duration::from_millis(t),
                transferred: (backup.transferred)(t),
                target: backup.target,
                finishing: false,
            });
            delays.push(delay.as_millis());
            t += delay.as_millis() as u64;
        }
        assert_eq!(delays, [1_000, 250]);
        assert_eq!(t, 1_250);
    }

    #[test]
    fn a_miss_in_steps_aims_at_the_middle_then_at_the_end_of_the_last_step() {
        let mut scheduler = Scheduler::default();
        let mut delay = |ms: u64, count: u64| {
            scheduler
                .next_delay(&Sample {
                    at: Duration::from_millis(ms),
                    transferred: count,
                    target: 40 * M,
                    finishing: false,
                })
                .as_millis()
        };
        // Copy estimated at 0, 16 and 32 MiB: 16 MiB/s, 8 MiB left, end at 2.5 s.
        assert_eq!(delay(0, M), 1_000);
        assert_eq!(delay(1_000, 15 * M), 1_000);
        assert_eq!(delay(2_000, 31 * M), 500);
        // Still 37 MiB shown at 2.5 s (the copy slowed down to 15.2 MiB/s over the window):
        // the last 3 MiB take at most 198 ms, at least 66 ms (1 MiB); first the middle.
        assert_eq!(delay(2_500, 37 * M), 132);
        // 39 MiB shown, the copy at 39.5: 1 MiB at most, 67 ms at 15.0 MiB/s.
        assert_eq!(delay(2_632, 39 * M), 67);
        // Then the back-off.
        assert_eq!(delay(2_699, 39 * M), 50);
        assert_eq!(delay(2_749, 39 * M), 100);
    }

    #[test]
    fn bursts_are_seen_within_50_ms_at_most_two_queries_beyond_the_seed() {
        let mut latencies = Vec::new();
        for mib_per_s in [7, 13, 16, 29, 50, 100] {
            for size in (20..400).step_by(7) {
                let backup = bursts(size * M, mib_per_s);
                // Ends within the first second are seen at 1 s, as by the seed.
                if backup.done < 1_200 || backup.done > 30_000 {
                    continue;
                }
                for cost_ms in [0, 2] {
                    let run = simulate(&backup, cost_ms);
                    assert_bounded(&run, &backup);
                    let seed = seed_queries(backup.done, cost_ms);
                    assert!(
                        run.queries <= seed + 2,
                        "{size} MiB at {mib_per_s} MiB/s: {} queries, seed {seed}",
                        run.queries
                    );
                    latencies.push(run.latency);
                }
            }
        }
        latencies.sort_unstable();
        let at = |q: usize| latencies[(latencies.len() - 1) * q / 100];
        assert!(at(50) <= 50, "median {}: {latencies:?}", at(50));
        assert!(at(95) <= 150, "p95 {}: {latencies:?}", at(95));
        println!(
            "{} runs: median {} ms, p95 {} ms, max {} ms",
            latencies.len(),
            at(50),
            at(95),
            at(100)
        );
    }
}
