//! The backup worker thread: copies the devices one after the other (QEMU runs the jobs of
//! a backup as a sequential transaction), books QEMU's counters, applies the rate cap and
//! the faults, sends the jobs' events, and records how the job ended.
//!
//! The worker keeps its own count of the bytes it read; the rate cap and the fault
//! percentages go by that count. What `query-backup` shows is published from it by
//! [`Publish`]: for VMA in pve-qemu's bursts (1 MiB at once, then 2 MiB steps), for PBS per
//! 4 MiB chunk.
//!
//! End of a job: a VMA job stays `active` with `finishing: false` (possibly with
//! `transferred == total`) while the writer flushes the last extent and closes the fd, then
//! it is `done`; pve-qemu reports nothing else for VMA. Only a PBS job has a finishing phase
//! (`finishing: true` for `--finishing-ms`, the manifest upload) before it is `done`.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::disk::{Disk, PBS_CHUNK};
use crate::job::BitmapState;
use crate::qjson::{obj, J};
use crate::state::Sim;
use crate::target::{strerror, Target};

/// VMA cluster size.
const CLUSTER: u64 = 65536;
/// What a VMA job publishes at once: pve-qemu's `query-backup` shows 1 MiB right after
/// `backup`.
pub const FIRST_BURST: u64 = 1 << 20;
/// The step of a VMA job's published count after the first MiB.
pub const BURST: u64 = 2 << 20;

/// How the worker's own counts become the `query-backup` counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// After every cluster or chunk (PBS: 4 MiB chunks; VMA with `--smooth-progress`).
    Each,
    /// VMA as pve-qemu 10.0 shows it: `min(1 MiB, goal)` as the job is created, then
    /// `1 MiB + k * 2 MiB` when the worker's count gets there, the full count at the end.
    Bursts,
}

impl Publish {
    /// The mode of a job.
    pub fn for_job(vma: bool, smooth: bool) -> Publish {
        if vma && !smooth {
            Publish::Bursts
        } else {
            Publish::Each
        }
    }

    /// `transferred` of a job just created (`zero-bytes` is 0 then).
    pub fn initial(self, goal: u64) -> u64 {
        match self {
            Publish::Each => 0,
            Publish::Bursts => FIRST_BURST.min(goal),
        }
    }
}

/// The published state of a job: when the next publication is due.
struct Publisher {
    mode: Publish,
    goal: u64,
    /// Bursts: the worker's count at which the next value is published (`u64::MAX` once
    /// the full count was).
    next: u64,
}

impl Publisher {
    fn new(mode: Publish, goal: u64) -> Publisher {
        Publisher {
            mode,
            goal,
            next: FIRST_BURST,
        }
    }

    /// The `transferred` to publish now that the worker's count is `done`, if any.
    fn due(&mut self, done: u64) -> Option<u64> {
        match self.mode {
            Publish::Each => Some(done),
            Publish::Bursts if done >= self.goal => (self.next != u64::MAX).then(|| {
                self.next = u64::MAX;
                done
            }),
            Publish::Bursts if done >= self.next => {
                let value = FIRST_BURST + (done - FIRST_BURST) / BURST * BURST;
                self.next = value + BURST;
                Some(value)
            }
            Publish::Bursts => None,
        }
    }
}

/// One device of a job.
pub struct Device {
    /// Index into [`Sim::disks`].
    pub disk: usize,
    /// PBS with a usable bitmap: which 4 MiB chunks are dirty.
    pub dirty_chunks: Option<Vec<bool>>,
}

/// Where the data goes.
pub enum Kind {
    /// A VMA stream into `target`.
    Vma {
        /// The output fd.
        target: Target,
        /// Archive uuid (the job uuid).
        uuid: [u8; 16],
        /// Config blobs (basename, data).
        configs: Vec<(String, Vec<u8>)>,
    },
    /// Proxmox Backup Server: nothing is written, progress is simulated.
    Pbs,
}

/// Everything the worker needs.
pub struct Plan {
    /// Devices in backup order.
    pub devices: Vec<Device>,
    /// Output.
    pub kind: Kind,
    /// Bytes per second, `None` = unlimited.
    pub rate: Option<u64>,
    /// The `speed` argument, reported in block job events.
    pub speed: u64,
    /// Bytes to transfer (`dirty`): the base of the fault percentages.
    pub goal: u64,
    /// How the counters are published (the record already shows [`Publish::initial`]).
    pub publish: Publish,
}

/// Starts the worker. The jobs' `created` events are sent before, from the calling thread:
/// pve-qemu creates the jobs before `backup` replies, so they precede the reply.
pub fn spawn(sim: Arc<Sim>, plan: Plan, cancel: Arc<AtomicBool>) -> io::Result<JoinHandle<()>> {
    let disks: Vec<&Disk> = plan.devices.iter().map(|d| &sim.disks[d.disk]).collect();
    JobEvents::new(&sim, &disks, plan.speed).created();
    std::thread::Builder::new()
        .name("backup".into())
        .spawn(move || run(&sim, plan, &cancel))
}

/// Why a job stopped early.
enum Stop {
    Canceled,
    Failed(String),
}

fn run(sim: &Sim, plan: Plan, cancel: &AtomicBool) {
    let disks: Vec<&Disk> = plan.devices.iter().map(|d| &sim.disks[d.disk]).collect();
    let mut events = JobEvents::new(sim, &disks, plan.speed);
    let mut progress = Progress {
        sim,
        cancel,
        rate: plan.rate,
        begun: Instant::now(),
        paced: 0,
        goal: plan.goal,
        vma: matches!(plan.kind, Kind::Vma { .. }),
        done: 0,
        zero: 0,
        reused: 0,
        publisher: Publisher::new(plan.publish, plan.goal),
    };
    let outcome = match plan.kind {
        Kind::Vma {
            target,
            uuid,
            configs,
        } => run_vma(
            &mut progress,
            &mut events,
            &plan.devices,
            target,
            uuid,
            configs,
        ),
        Kind::Pbs => run_pbs(&mut progress, &mut events, &plan.devices),
    };
    match &outcome {
        Ok(()) => progress.publish_all(),
        Err(stop) => events.abort(match stop {
            Stop::Canceled => None,
            Stop::Failed(m) => Some(m.as_str()),
        }),
    }
    conclude(sim, &plan.devices, outcome);
}

fn run_vma(
    p: &mut Progress,
    ev: &mut JobEvents,
    devices: &[Device],
    target: Target,
    uuid: [u8; 16],
    configs: Vec<(String, Vec<u8>)>,
) -> Result<(), Stop> {
    let sim = p.sim;
    let specs = devices
        .iter()
        .map(|d| (sim.disks[d.disk].name.clone(), sim.disks[d.disk].size))
        .collect();
    let mut writer = vma::Writer::new(target, uuid, now(), configs, specs)
        .map_err(|e| Stop::Failed(e.to_string()))?;
    p.faults(0)?;
    let mut buf = vec![0u8; CLUSTER as usize];
    for (i, dev) in devices.iter().enumerate() {
        let disk = &sim.disks[dev.disk];
        let dev_id = (i + 1) as u8;
        ev.start(i);
        for cluster in 0..disk.size.div_ceil(CLUSTER) {
            p.check()?;
            let offset = cluster * CLUSTER;
            let len = CLUSTER.min(disk.size - offset) as usize;
            let written = if disk.known_zero(offset, len as u64) {
                writer.write_zero_cluster(dev_id, cluster as u32)
            } else {
                disk.read_at(offset, &mut buf[..len])
                    .map_err(read_failure)?;
                writer.write_cluster(dev_id, cluster as u32, &buf[..len])
            };
            let stats = written.map_err(|e| p.write_failure(e))?;
            ev.advance(i, stats.transferred);
            p.book(stats.transferred, stats.zero_bytes, 0)?;
        }
        ev.copied(i);
    }
    ev.complete();
    // No finishing phase for VMA: the job stays active with finishing=false while the
    // writer flushes (into a full pipe, maybe) and closes. Dropping the returned target
    // closes the fd: the reader sees EOF.
    writer.finish().map_err(|e| p.write_failure(e))?;
    Ok(())
}

fn run_pbs(p: &mut Progress, ev: &mut JobEvents, devices: &[Device]) -> Result<(), Stop> {
    let sim = p.sim;
    p.faults(0)?;
    for (i, dev) in devices.iter().enumerate() {
        let disk = &sim.disks[dev.disk];
        ev.start(i);
        for chunk in 0..disk.size.div_ceil(PBS_CHUNK) {
            p.check()?;
            if let Some(dirty) = &dev.dirty_chunks {
                if !dirty.get(chunk as usize).copied().unwrap_or(true) {
                    continue;
                }
            }
            let offset = chunk * PBS_CHUNK;
            let len = PBS_CHUNK.min(disk.size - offset);
            // Zero chunks are known to the server, so they count as reused too.
            let zero = if disk.is_zero(offset, len).map_err(read_failure)? {
                len
            } else {
                0
            };
            ev.advance(i, len);
            p.book(len, zero, zero)?;
        }
        ev.copied(i);
    }
    ev.complete();
    p.finishing()
}

fn read_failure(e: io::Error) -> Stop {
    let errno = e.raw_os_error().unwrap_or(libc::EIO);
    Stop::Failed(format!(
        "job failed with err -{errno} - {}",
        strerror(errno)
    ))
}

/// Records how the job ended: error (first one wins), end time, bitmaps. A failed or
/// cancelled job keeps the counters it published last.
fn conclude(sim: &Sim, devices: &[Device], outcome: Result<(), Stop>) {
    let mut st = sim.lock();
    let st = &mut *st;
    let Some(job) = st.job.as_mut() else { return };
    let rec = &mut job.record;
    match outcome {
        Ok(()) => {
            if sim.cfg.faults.count_mismatch {
                rec.transferred = rec.total.saturating_sub(CLUSTER);
            }
            for dev in devices {
                let name = &sim.disks[dev.disk].name;
                if let Some(BitmapState::Pending(key)) = st.bitmaps.get(name) {
                    let key = key.clone();
                    st.bitmaps.insert(name.clone(), BitmapState::Valid(key));
                }
            }
        }
        Err(Stop::Canceled) => rec.set_error("backup canceled"),
        Err(Stop::Failed(msg)) => rec.set_error(&msg),
    }
    rec.finishing = false;
    rec.end_time = Some(now());
}

/// Epoch seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Counters, rate cap, faults and cancellation checks.
struct Progress<'a> {
    sim: &'a Sim,
    cancel: &'a AtomicBool,
    rate: Option<u64>,
    begun: Instant,
    /// Bytes accounted against the rate cap.
    paced: u64,
    goal: u64,
    vma: bool,
    /// The worker's own counts (`transferred`, `zero-bytes`, `reused` booked by the job,
    /// without what a bitmap proved clean); the record shows what was published of them.
    done: u64,
    zero: u64,
    reused: u64,
    publisher: Publisher,
}

impl Progress<'_> {
    fn check(&self) -> Result<(), Stop> {
        if self.cancel.load(Ordering::SeqCst) {
            Err(Stop::Canceled)
        } else {
            Ok(())
        }
    }

    /// Books one cluster/chunk, publishes what is due, then applies faults and the rate
    /// cap.
    fn book(&mut self, transferred: u64, zero: u64, reused: u64) -> Result<(), Stop> {
        self.done += transferred;
        self.zero += zero;
        self.reused += reused;
        if let Some(value) = self.publisher.due(self.done) {
            if !self.publish(value) {
                return Err(Stop::Canceled);
            }
        }
        self.faults(self.done)?;
        self.paced += transferred;
        match self.rate {
            Some(rate) => {
                let due = Duration::try_from_secs_f64(self.paced as f64 / rate as f64)
                    .ok()
                    .and_then(|d| self.begun.checked_add(d));
                self.sleep_until(due)
            }
            None => self.check(),
        }
    }

    /// Shows `transferred` in the record, with the zero bytes counted so far (never more
    /// than `transferred`) and the reused ones. False if the job is gone.
    fn publish(&self, transferred: u64) -> bool {
        let mut st = self.sim.lock();
        let Some(job) = st.job.as_mut() else {
            return false;
        };
        let rec = &mut job.record;
        rec.transferred = transferred;
        rec.zero_bytes = self.zero.min(transferred);
        rec.reused = rec.total - rec.dirty + self.reused;
        true
    }

    /// Publishes the final counts of a job that succeeded (normally shown already).
    fn publish_all(&self) {
        self.publish(self.done);
    }

    /// Fault flags that trigger once `done` bytes of `goal` are transferred.
    fn faults(&self, done: u64) -> Result<(), Stop> {
        let f = &self.sim.cfg.faults;
        let reached = |p: u8| u128::from(done) * 100 >= u128::from(p) * u128::from(self.goal);
        if f.die_at.is_some_and(reached) {
            // SAFETY: `_exit` ends the process at once, without unwinding or destructors:
            // the abrupt death of QEMU this fault stands for.
            unsafe { libc::_exit(9) };
        }
        if let Some((p, msg)) = &f.error_at {
            if reached(*p) {
                return Err(Stop::Failed(msg.clone()));
            }
        }
        if self.vma && f.write_error_at.is_some_and(reached) {
            return Err(Stop::Failed(format!(
                "vma_queue_write: write error - {}",
                strerror(libc::EIO)
            )));
        }
        Ok(())
    }

    /// The `finishing` phase of a PBS job: flag set, then `--finishing-ms` of waiting.
    fn finishing(&self) -> Result<(), Stop> {
        if let Some(job) = self.sim.lock().job.as_mut() {
            job.record.finishing = true;
        }
        let ms = self.sim.cfg.finishing_ms;
        self.sleep_until(Instant::now().checked_add(Duration::from_millis(ms)))
    }

    /// Sleeps in short steps so that `backup-cancel` is noticed quickly. `None` is a
    /// deadline beyond what `Instant` holds (an absurd rate): only cancellation ends it.
    fn sleep_until(&self, due: Option<Instant>) -> Result<(), Stop> {
        loop {
            self.check()?;
            let left = match due {
                Some(due) => match due.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return Ok(()),
                },
                None => Duration::MAX,
            };
            std::thread::sleep(left.min(Duration::from_millis(10)));
        }
    }

    /// QEMU's text for a failed VMA write; a write stopped by cancellation is a cancel.
    fn write_failure(&self, e: vma::VmaError) -> Stop {
        if self.cancel.load(Ordering::SeqCst) {
            return Stop::Canceled;
        }
        match e {
            vma::VmaError::Write(io) => Stop::Failed(format!(
                "vma_queue_write: write error - {}",
                strerror(io.raw_os_error().unwrap_or(libc::EIO))
            )),
            other => Stop::Failed(other.to_string()),
        }
    }
}

/// Block job events of the backup's jobs (one per device, `id` and `device` = the drive
/// name), always sent, as QEMU does. QEMU creates all jobs at once and runs them one after
/// the other.
struct JobEvents<'a> {
    sim: &'a Sim,
    jobs: Vec<(String, u64)>,
    offsets: Vec<u64>,
    /// Index of the running job.
    running: Option<usize>,
    concluded: bool,
    speed: u64,
}

impl<'a> JobEvents<'a> {
    fn new(sim: &'a Sim, disks: &[&Disk], speed: u64) -> Self {
        JobEvents {
            sim,
            jobs: disks.iter().map(|d| (d.name.clone(), d.size)).collect(),
            offsets: vec![0; disks.len()],
            running: None,
            concluded: false,
            speed,
        }
    }

    fn emit(&self, name: &str, data: J) {
        self.sim.out.event(name, Some(data));
    }

    fn status(&self, i: usize, status: &str) {
        let id = self.jobs[i].0.as_str();
        self.emit(
            "JOB_STATUS_CHANGE",
            obj([("id", id.into()), ("status", status.into())]),
        );
    }

    fn block_job(&self, i: usize, error: Option<&str>) -> J {
        let mut d = obj([
            ("type", "backup".into()),
            ("device", self.jobs[i].0.as_str().into()),
            ("len", self.jobs[i].1.into()),
            ("offset", self.offsets[i].into()),
            ("speed", self.speed.into()),
        ]);
        if let Some(e) = error {
            d.push("error", e.into());
        }
        d
    }

    fn created(&self) {
        for i in 0..self.jobs.len() {
            self.status(i, "created");
        }
    }

    fn start(&mut self, i: usize) {
        self.running = Some(i);
        self.status(i, "running");
    }

    fn advance(&mut self, i: usize, bytes: u64) {
        self.offsets[i] += bytes;
    }

    fn copied(&mut self, i: usize) {
        self.running = None;
        self.status(i, "waiting");
    }

    /// All jobs succeeded: the transaction completes them together.
    fn complete(&mut self) {
        for i in 0..self.jobs.len() {
            self.status(i, "pending");
        }
        for i in 0..self.jobs.len() {
            self.emit("BLOCK_JOB_COMPLETED", self.block_job(i, None));
            self.status(i, "concluded");
            self.status(i, "null");
        }
        self.concluded = true;
    }

    /// The transaction aborts: the running job fails with `error` (or is cancelled), the
    /// others are cancelled.
    fn abort(&mut self, error: Option<&str>) {
        if self.concluded {
            return;
        }
        for i in 0..self.jobs.len() {
            self.status(i, "aborting");
            match (self.running == Some(i), error) {
                (true, Some(e)) => self.emit("BLOCK_JOB_COMPLETED", self.block_job(i, Some(e))),
                _ => self.emit("BLOCK_JOB_CANCELLED", self.block_job(i, None)),
            }
            self.status(i, "concluded");
            self.status(i, "null");
        }
        self.concluded = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values published while the worker's count goes up in `step`s to `goal`.
    fn published(mode: Publish, goal: u64, step: u64) -> Vec<u64> {
        let mut p = Publisher::new(mode, goal);
        let mut seen = vec![mode.initial(goal)];
        let mut done = 0;
        while done < goal {
            done = (done + step).min(goal);
            seen.extend(p.due(done));
        }
        seen
    }

    #[test]
    fn bursts_of_a_vma_job() {
        const M: u64 = 1 << 20;
        assert_eq!(
            published(Publish::Bursts, 8 * M, CLUSTER),
            [M, M, 3 * M, 5 * M, 7 * M, 8 * M]
        );
        // Past a threshold by a partial cluster: the threshold is published.
        assert_eq!(
            published(Publish::Bursts, 5 * M + 12345, 3 * M / 2),
            [M, M, 3 * M, 5 * M + 12345]
        );
        // Smaller than the first burst: all of it at once, and once more at the end.
        assert_eq!(published(Publish::Bursts, 4096, CLUSTER), [4096, 4096]);
        assert_eq!(
            published(Publish::Each, 3 * CLUSTER, CLUSTER),
            [0, CLUSTER, 2 * CLUSTER, 3 * CLUSTER]
        );
        assert_eq!(Publish::for_job(true, false), Publish::Bursts);
        assert_eq!(Publish::for_job(true, true), Publish::Each);
        assert_eq!(Publish::for_job(false, false), Publish::Each);
    }
}
