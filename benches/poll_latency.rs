//! How late the end of a backup is noticed: the library's status loop
//! (`progress::Poller`) against the seed's (query, then sleep one second), both on
//! `pve-qmp-sim` with its default progress shape (pve-qemu's: 1 MiB right after `backup`,
//! then 2 MiB bursts; VMA jobs never report `finishing`), alternating run by run.
//!
//! The reference point is the moment the simulator closes the VMA stream (EOF on the pipe),
//! which is when the job ends. The queries are counted in the simulator's `--record` log.
//! Needs `cargo build --release -p pve-qmp-sim` (or `PVE_QMP_SIM=<path>`). Settings:
//! `BENCH_RUNS` (default 24, quick 4): run `i` backs up a disk of 20 + i MiB (mod 24) at
//! 16 MiB/s, 1.25 to 2.7 s, so that the end falls at varying sub-second phases.

mod common;

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Row;
use serde_json::json;
use testkit::{Sim, TempDir};
use vzdump_qemu::backup::VmaParams;
use vzdump_qemu::progress::{StatusLoop, Step, Style};
use vzdump_qemu::qmp::{Options, Peer};

/// The simulator's `--record` log, in its directory.
const RECORD: &str = "record.jsonl";

/// The simulator for one run: a generated disk of `size_mib` at 16 MiB/s, every command
/// recorded in [`RECORD`] in its directory.
fn start_sim(tag: &str, size_mib: u64) -> Sim {
    let bin = std::env::var_os("PVE_QMP_SIM")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::release_bin("pve-qmp-sim"));
    let dir = TempDir::new(&format!("bench-{tag}"));
    let record = dir.join(RECORD).display().to_string();
    let disk = format!("drive-scsi0={size_mib}M");
    Sim::start_in(
        &bin,
        dir,
        &["--gen-disk", &disk, "--rate", "16M", "--record", &record],
    )
}

/// Starts a backup into a pipe; the channel gets the instant of EOF.
fn start(sim: &Sim) -> (String, mpsc::Receiver<Instant>) {
    let (r, w) = nix::unistd::pipe().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = File::from(r);
        let mut buf = vec![0u8; 1 << 20];
        while r.read(&mut buf).unwrap() > 0 {}
        tx.send(Instant::now()).unwrap();
    });
    let uuid = common::start_vma(&Peer::path(&sim.socket), w.as_fd(), &VmaParams::default());
    (uuid, rx)
}

/// The seed's loop: query, observe, sleep one second.
fn seed_loop(peer: &Peer, uuid: &str) {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let mut state = StatusLoop::new(Style::Seed, uuid, now(), None);
    loop {
        let status = vzdump_qemu::progress::query(peer, &Options::default()).unwrap();
        match state.observe(&status, now()).step {
            Step::Continue => std::thread::sleep(Duration::from_secs(1)),
            Step::Finished => return,
            Step::Failed(e) => panic!("{e}"),
        }
    }
}

/// One measured run: (ms from EOF to the loop's return, query-backup count, seconds).
fn measure(size_mib: u64, tag: &str, run: fn(&Peer, &str)) -> (f64, usize, f64) {
    let sim = start_sim(tag, size_mib);
    let peer = Peer::path(&sim.socket);
    let begin = Instant::now();
    let (uuid, eof) = start(&sim);
    run(&peer, &uuid);
    let returned = Instant::now();
    let eof = eof.recv().unwrap();
    let queries = std::fs::read_to_string(sim.dir.join(RECORD))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"query-backup\""))
        .count();
    let late = returned.saturating_duration_since(eof).as_secs_f64() * 1000.0;
    (late, queries, returned.duration_since(begin).as_secs_f64())
}

fn main() {
    let runs = common::env_u64("BENCH_RUNS", if common::quick() { 4 } else { 24 });
    println!("backup of a generated disk at 16 MiB/s; lateness = loop return - end of stream");
    println!(
        "{:>8} {:>22} {:>22}",
        "disk", "seed loop (ms, queries)", "library (ms, queries)"
    );
    let (mut seed, mut lib) = (Vec::new(), Vec::new());
    let (mut seed_q, mut lib_q) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let size = 20 + i % 24;
        // Alternate which loop goes first.
        let (s, l) = if i % 2 == 0 {
            let s = measure(size, "seed", seed_loop);
            (s, measure(size, "lib", common::wait_done))
        } else {
            let l = measure(size, "lib", common::wait_done);
            (measure(size, "seed", seed_loop), l)
        };
        println!(
            "{:>6}M {:>14.1} ms {:>4}   {:>14.1} ms {:>4}   ({:.2} s)",
            size, s.0, s.1, l.0, l.1, l.2
        );
        seed.push(s.0);
        lib.push(l.0);
        seed_q.push(s.1 as f64);
        lib_q.push(l.1 as f64);
    }
    let extra: Vec<i64> = lib_q
        .iter()
        .zip(&seed_q)
        .map(|(l, s)| *l as i64 - *s as i64)
        .collect();
    let case = "backup end noticed (16 MiB/s, 20-43 MiB)";
    let mut rows = Vec::new();
    for (variant, samples, queries) in [
        ("seed loop (query, sleep 1 s)", seed, &seed_q),
        ("library Poller", lib, &lib_q),
    ] {
        let mut row = Row::new("completion", case, variant, "ms");
        row.samples = samples;
        let (median, p95) = common::median_p95(queries);
        row.extra.insert(
            "queries".into(),
            json!({
                "median": median,
                "p95": p95,
                "max": queries.iter().copied().fold(0.0, f64::max),
                "per_run": queries,
            }),
        );
        if variant == "library Poller" {
            row = row
                .against("seed loop (query, sleep 1 s)")
                .target("median <= 50 ms, queries <= seed + 2");
            row.extra.insert(
                "queries_beyond_seed".into(),
                json!({ "max": extra.iter().max(), "per_run": extra }),
            );
        }
        rows.push(row);
    }
    common::emit(&rows);
    println!(
        "queries per run: seed median {}, library median {}; library beyond the seed: max {}",
        common::median_p95(&seed_q).0,
        common::median_p95(&lib_q).0,
        extra.iter().max().unwrap_or(&0)
    );
}
