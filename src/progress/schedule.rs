//! When to query next. The seed sleeps one second between queries, so it notices the end
//! half a second late on average; this schedule predicts the end from the observed rate and
//! queries right then, at a bounded cost in extra queries.
//!
//! Rules, in order:
//! - a query at a predicted end that finds the job still running is a miss: from then on the
//!   delays grow geometrically from [`MIN_DELAY`] up to the interval, until the job is far
//!   from its end again (predicted end two intervals or more away);
//! - with a rate and the end predicted within one interval (and no miss), query at the end;
//! - near the end without a rate to predict from (copy complete, `finishing`, or ≥ 99 %
//!   and stalled), the same geometric back-off;
//! - otherwise one query per interval.
//!
//! A token bucket bounds the whole: one query per interval on average, plus at most
//! [`BURST`] extra queries over a run, whatever the rules ask for. No delay is below
//! [`MIN_DELAY`] (at most 20 queries per second).

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

/// Decides the delay before each next query.
#[derive(Debug, Clone)]
pub struct Scheduler {
    interval: Duration,
    /// Token bucket in units of time: a query costs one interval, time refills it.
    credit: Duration,
    last_at: Option<Duration>,
    /// Recent (time, transferred) pairs, oldest first.
    window: VecDeque<(Duration, u64)>,
    predicted_end: Option<Duration>,
    missed: bool,
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
            predicted_end: None,
            missed: false,
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
    }

    /// Time left until `sample.target` at the rate over the window, if there is progress.
    fn eta(&self, sample: &Sample) -> Option<Duration> {
        let remaining = sample
            .target
            .checked_sub(sample.transferred)
            .filter(|&r| r > 0)?;
        let (&(t0, b0), &(t1, b1)) = (self.window.front()?, self.window.back()?);
        let (span, bytes) = (
            t1.saturating_sub(t0).as_secs_f64(),
            b1.saturating_sub(b0) as f64,
        );
        if span <= 0.0 || bytes <= 0.0 {
            return None;
        }
        // Round up to whole milliseconds so the query does not come just before the end.
        let millis = (remaining as f64 * span / bytes * 1000.0).ceil();
        Some(Duration::from_millis(millis.min(u64::MAX as f64) as u64))
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
            self.predicted_end = None;
        }
        let near_end = sample.finishing
            || sample.transferred >= sample.target
            || u128::from(sample.transferred) * 100 >= u128::from(sample.target) * 99;
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
}
