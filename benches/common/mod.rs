//! What the `make bench` programs share: settings, statistics, result rows and worker
//! processes (Perl, Python and C programs that time operations inside one process and
//! answer on a pipe, so that the variants of a row can alternate round by round).
//!
//! Settings: `BENCH_QUICK=1` (small sizes, few repetitions), `BENCH_OUT=<file>` (JSON rows
//! are appended to it, one per line; `scripts/bench.sh` collects them into
//! `target/bench/bench.json`), `CARGO_TARGET_DIR` (where the release binaries are).

// Each bench binary uses a different part of this module.
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{json, Value};
use testkit::{Sim, TempDir};
use vzdump_qemu::backup::{self, VmaParams};
use vzdump_qemu::progress::{Poller, Style};
use vzdump_qemu::qmp::{Options, Peer};

/// `BENCH_QUICK=1`: small sizes and few repetitions (`make bench QUICK=1`).
pub fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A numeric setting from the environment.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The repository.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Cargo's target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { repo().join(p) })
        .unwrap_or_else(|| repo().join("target"))
}

/// A release binary of the workspace (`cargo build --release` makes them).
pub fn release_bin(name: &str) -> PathBuf {
    let path = target_dir().join("release").join(name);
    assert!(
        path.exists(),
        "{} missing: cargo build --workspace --release",
        path.display()
    );
    path
}

/// `target/bench`: scratch files, the venv, the C bench programs, the results.
pub fn bench_dir() -> PathBuf {
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The release `pve-qmp-sim` with `args`, on a socket in a new temp dir named after
/// `tag`, once it accepts; killed and reaped when dropped.
pub fn start_sim(tag: &str, args: &[&str]) -> Sim {
    Sim::start_in(&release_bin("pve-qmp-sim"), TempDir::new(tag), args)
}

/// Starts the VMA backup `params` into `fd` with the default options; its UUID.
pub fn start_vma(peer: &Peer, fd: BorrowedFd<'_>, params: &VmaParams) -> String {
    backup::start_vma(peer, &Options::default(), fd, params, None).unwrap()
}

/// Waits until the backup job `uuid` is done, with the library's status loop (`Poller`,
/// the seed's style, log lines dropped).
pub fn wait_done(peer: &Peer, uuid: &str) {
    let mut poller = Poller::new(peer, &Options::default(), uuid, Style::Seed, None);
    poller.run(&mut |_, _| {}, &mut || false).unwrap();
}

/// A C bench program (`benches/c/<name>.c`), as `scripts/bench.sh` compiles it into
/// `target/bench/c` (or `$BENCH_C_DIR`).
pub fn c_program(name: &str) -> PathBuf {
    let path = std::env::var_os("BENCH_C_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| bench_dir().join("c"))
        .join(name);
    assert!(
        path.exists(),
        "{} missing: scripts/bench.sh compiles it",
        path.display()
    );
    path
}

/// A fresh scratch directory under `target/bench/tmp`, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        Scratch::under(&bench_dir().join("tmp"), tag)
    }

    /// A scratch directory in `base` instead.
    pub fn under(base: &std::path::Path, tag: &str) -> Scratch {
        let dir = base.join(format!("{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The median and the 95th percentile (nearest rank) of `samples`.
pub fn median_p95(samples: &[f64]) -> (f64, f64) {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    let rank = ((0.95 * n as f64).ceil() as usize).clamp(1, n);
    (median, v[rank - 1])
}

/// The order of `n` variants in round `round`: rotated, so that none is always first.
pub fn order(round: usize, n: usize) -> Vec<usize> {
    (0..n).map(|i| (i + round) % n).collect()
}

/// One row of the table: a variant of a case, its samples, and the variant of the same
/// case it is compared with.
pub struct Row {
    pub section: &'static str,
    pub case: String,
    pub variant: String,
    pub unit: &'static str,
    pub samples: Vec<f64>,
    /// The variant of the same case this row's ratio is against (`None`: it is the
    /// baseline).
    pub baseline: Option<String>,
    /// What the row is meant to reach, as text (e.g. `<= 1.1x floor`).
    pub target: Option<String>,
    /// More figures (e.g. queries per run).
    pub extra: serde_json::Map<String, Value>,
}

impl Row {
    pub fn new(section: &'static str, case: &str, variant: &str, unit: &'static str) -> Row {
        Row {
            section,
            case: case.into(),
            variant: variant.into(),
            unit,
            samples: Vec::new(),
            baseline: None,
            target: None,
            extra: serde_json::Map::new(),
        }
    }

    pub fn against(mut self, baseline: &str) -> Row {
        self.baseline = Some(baseline.into());
        self
    }

    pub fn target(mut self, target: &str) -> Row {
        self.target = Some(target.into());
        self
    }
}

/// Prints `rows` as this program's part of the table and appends them to `BENCH_OUT`.
/// Ratios are of medians, against the baseline variant of the same case; the paired ratio
/// is the median of the ratios of samples taken in the same round.
pub fn emit(rows: &[Row]) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?").to_string();
    let find =
        |case: &str, variant: &str| rows.iter().find(|r| r.case == case && r.variant == variant);
    let median_of =
        |case: &str, variant: &str| find(case, variant).map(|r| median_p95(&r.samples).0);
    let mut out = std::env::var_os("BENCH_OUT").map(|path| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
    });
    println!(
        "{:<40} {:<36} {:>11} {:>11} {:<5} {:>5} {:>7}",
        "case", "variant", "median", "p95", "unit", "n", "ratio"
    );
    for row in rows {
        let (median, p95) = median_p95(&row.samples);
        let ratio = match &row.baseline {
            None => Some(1.0),
            Some(b) => median_of(&row.case, b).map(|m| median / m),
        };
        println!(
            "{:<40} {:<36} {:>11} {:>11} {:<5} {:>5} {:>7}",
            row.case,
            row.variant,
            fmt(median),
            fmt(p95),
            row.unit,
            row.samples.len(),
            ratio.map_or("?".into(), |r| format!("{r:.2}x")),
        );
        // Samples are recorded round by round, the same number per round for every variant
        // of a case: the i-th samples of two rows were taken close together in time, so the
        // median of their ratios resists load that drifts over the run.
        let paired = row
            .baseline
            .as_deref()
            .and_then(|b| find(&row.case, b))
            .and_then(|b| {
                (b.samples.len() == row.samples.len()).then(|| {
                    let ratios: Vec<f64> = row
                        .samples
                        .iter()
                        .zip(&b.samples)
                        .map(|(x, y)| x / y)
                        .collect();
                    median_p95(&ratios).0
                })
            });
        if let Some(out) = out.as_mut() {
            let mut value = json!({
                "section": row.section,
                "case": row.case,
                "variant": row.variant,
                "unit": row.unit,
                "n": row.samples.len(),
                "median": median,
                "p95": p95,
                "baseline": row.baseline,
                "ratio": ratio,
                "paired_ratio": paired,
                "target": row.target,
                "load1": load,
            });
            for (k, v) in &row.extra {
                value[k] = v.clone();
            }
            writeln!(out, "{value}").unwrap();
        }
    }
}

/// A number with three significant digits or more.
pub fn fmt(v: f64) -> String {
    if !v.is_finite() {
        "?".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A program that times operations on request: it reads one request per line on stdin
/// and answers each with one line on stdout (space-separated nanoseconds, or `ok ...`).
/// Killed and reaped when dropped.
pub struct Worker {
    name: String,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    pub fn spawn(name: &str, mut command: Command) -> Worker {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {command:?}: {e}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut worker = Worker {
            name: name.into(),
            child,
            stdin,
            stdout,
        };
        let hello = worker.ask("hello");
        assert!(hello.starts_with("ok"), "{name}: answered '{hello}'");
        worker
    }

    /// Sends `request`, returns the answer line (without its newline).
    pub fn ask(&mut self, request: &str) -> String {
        writeln!(self.stdin, "{request}")
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("{}: request '{request}': {e}", self.name));
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).unwrap();
        assert!(n > 0, "{}: no answer to '{request}' (it died?)", self.name);
        let line = line.trim_end().to_string();
        assert!(
            !line.starts_with("error"),
            "{}: '{request}': {line}",
            self.name
        );
        line
    }

    /// Sends `request` and parses the answer as nanoseconds; returns microseconds.
    pub fn timings_us(&mut self, request: &str) -> Vec<f64> {
        self.ask(request)
            .split_whitespace()
            .map(|t| {
                t.parse::<f64>()
                    .unwrap_or_else(|_| panic!("{}: not a number: '{t}'", self.name))
                    / 1000.0
            })
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        // Give it a moment to leave by itself, then make sure.
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Perl interpreter running `benches/perl/<script>` with the built module and the
/// workers' `BenchCommon.pm` (in `benches/perl`) on its path.
pub fn perl_command(script: &str) -> Command {
    let perl = repo().join("perl");
    let scripts = repo().join("benches/perl");
    let mut command = Command::new("perl");
    command
        .arg(format!("-I{}", perl.join("blib/lib").display()))
        .arg(format!("-I{}", perl.join("blib/arch").display()))
        .arg(format!("-I{}", scripts.display()))
        .arg(scripts.join(script));
    command
}

/// Peak resident set size of this process so far (`VmHWM`), in KiB.
pub fn vm_hwm_kib() -> u64 {
    proc_status_kib("VmHWM:")
}

/// Resident set size of this process (`VmRSS`), in KiB.
pub fn vm_rss_kib() -> u64 {
    proc_status_kib("VmRSS:")
}

fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

/// `MemAvailable` of the machine, in bytes.
pub fn mem_available() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
