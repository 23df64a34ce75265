//! How late the end of a backup is noticed: the library's status loop against the seed's
//! (query, then sleep one second), both on `pve-qmp-sim` in the same run.
//!
//! The reference point is the moment the simulator closes the VMA stream (EOF on the pipe),
//! which is when the job ends. Needs `cargo build --release -p pve-qmp-sim` (or
//! `PVE_QMP_SIM=<path>`). Settings: `BENCH_RUNS` (default 8).

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vzdump_qemu::backup::{self, VmaParams};
use vzdump_qemu::progress::Poller;
use vzdump_qemu::progress::{StatusLoop, Step, Style};
use vzdump_qemu::qmp::{Options, Peer};

struct Sim {
    child: Child,
    socket: PathBuf,
    record: PathBuf,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.record);
    }
}

fn start_sim(tag: &str, size_mib: u64) -> Sim {
    let bin = std::env::var_os("PVE_QMP_SIM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/pve-qmp-sim")
        });
    assert!(
        bin.exists(),
        "{} missing: cargo build --release -p pve-qmp-sim",
        bin.display()
    );
    let dir = std::env::temp_dir();
    let socket = dir.join(format!("vzq-bench-{}-{tag}.qmp", std::process::id()));
    let record = dir.join(format!("vzq-bench-{}-{tag}.jsonl", std::process::id()));
    let child = Command::new(bin)
        .args([
            "--gen-disk",
            &format!("drive-scsi0={size_mib}M"),
            "--rate",
            "16M",
        ])
        .arg("--socket")
        .arg(&socket)
        .arg("--record")
        .arg(&record)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        std::thread::sleep(Duration::from_millis(5));
    }
    Sim {
        child,
        socket,
        record,
    }
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
    let peer = Peer::path(&sim.socket);
    let uuid = backup::start_vma(
        &peer,
        &Options::default(),
        w.as_fd(),
        &VmaParams::default(),
        None,
    )
    .unwrap();
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

fn library_loop(peer: &Peer, uuid: &str) {
    let mut poller = Poller::new(peer, &Options::default(), uuid, Style::Seed, None);
    poller.run(&mut |_, _| {}, &mut || false).unwrap();
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
    let queries = std::fs::read_to_string(&sim.record)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"query-backup\""))
        .count();
    let late = returned.saturating_duration_since(eof).as_secs_f64() * 1000.0;
    (late, queries, returned.duration_since(begin).as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let runs: u64 = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    println!("backup of a generated disk at 16 MiB/s; lateness = loop return - end of stream");
    println!(
        "{:>8} {:>22} {:>22}",
        "disk", "seed loop (ms, queries)", "library (ms, queries)"
    );
    let (mut seed, mut lib) = (Vec::new(), Vec::new());
    for i in 0..runs {
        // 20..41 MiB: durations of 1.25..2.6 s, so the end falls at varying sub-second phases.
        let size = 20 + i * 3;
        let (s_ms, s_q, _) = measure(size, "seed", seed_loop);
        let (l_ms, l_q, secs) = measure(size, "lib", library_loop);
        println!(
            "{:>6}M {:>14.1} ms {:>4}   {:>14.1} ms {:>4}   ({secs:.2} s)",
            size, s_ms, s_q, l_ms, l_q
        );
        seed.push(s_ms);
        lib.push(l_ms);
    }
    let (s, l) = (median(seed), median(lib));
    println!(
        "median lateness: seed loop {s:.1} ms, library {l:.1} ms; ratio {:.1}x",
        s / l.max(0.1)
    );
}
