//! QMP against real QEMU 10 (`qemu-system-x86_64 -machine none -S`, a child of this
//! program): a whole operation (connect, greeting, `qmp_capabilities`, `query-status`,
//! close) and one `query-status` on an open connection, by
//!
//! - a raw-socket client in Rust sending the library's bytes (the floor),
//! - this library from Rust (`qmp::command`; `Qmp::connect` + `execute`),
//! - this library through the Perl module (`mon_cmd($path, ...)`; `Conn->new($path)->cmd`),
//! - qemu-server's way in Perl, a connection per command with JSON::XS over IO::Multiplex
//!   (`benches/perl/qmp_worker.pl`, written in the style of proxmox/qemu-server
//!   `src/PVE/QMPClient.pm`),
//! - Python's `qemu.qmp` (`benches/python/qmp_worker.py`, from the venv `scripts/bench.sh`
//!   makes in `target/bench/venv`; `BENCH_PYTHON` names another interpreter).
//!
//! Perl and Python run in one interpreter each for the whole run and time every operation
//! themselves (no start-up counted). The variants alternate in batches, round by round.
//! Settings: `BENCH_QMP_ROUNDS` (default 40, quick 3), `BENCH_QMP_BATCH` (ops per batch,
//! default 25, quick 10).

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::{Row, Worker};
use testkit::Qemu;
use vzdump_qemu::qmp::{self, Options, Peer, Qmp};

const WHOLE: &str = "QMP whole op (connect..close)";
const OPEN: &str = "QMP query-status, open connection";

const FLOOR: &str = "raw socket, Rust (floor)";
const LIB: &str = "library, Rust";
const PERL_MODULE: &str = "library via Perl module";
const PERL_MUX: &str = "qemu-server way (Perl IO::Multiplex+JSON::XS)";
const PYTHON: &str = "Python qemu.qmp";

/// QEMU's version (`major.minor.micro`), from the greeting on its QMP socket.
fn qemu_version(socket: &Path) -> String {
    let qmp = Qmp::connect(&Peer::path(socket), &Options::default()).unwrap();
    let v = &qmp.greeting().version["qemu"];
    format!("{}.{}.{}", v["major"], v["minor"], v["micro"])
}

/// The floor: the library's bytes over a plain socket, replies read up to their newline.
struct Raw {
    stream: UnixStream,
    buf: Vec<u8>,
    id: u64,
}

impl Raw {
    fn connect(path: &Path) -> Raw {
        let mut raw = Raw {
            stream: UnixStream::connect(path).unwrap(),
            buf: Vec::with_capacity(4096),
            id: 0,
        };
        raw.line(); // greeting
        raw.command("qmp_capabilities");
        raw
    }

    /// Sends `command` with an id, as the library does, and reads the reply line.
    fn command(&mut self, command: &str) {
        self.id += 1;
        let request = format!(
            "{{\"execute\":\"{command}\",\"id\":\"{}:{}\"}}\r\n",
            std::process::id(),
            self.id
        );
        self.stream.write_all(request.as_bytes()).unwrap();
        let reply = self.line();
        assert!(reply.starts_with(b"{\"return\""), "{reply:?}");
    }

    fn line(&mut self) -> Vec<u8> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                return self.buf.drain(..=end).collect();
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).unwrap();
            assert!(n > 0, "QEMU closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// One batch of `n` operations of `variant`; microseconds each.
fn batch(
    variant: &str,
    case: &str,
    n: usize,
    socket: &Path,
    perl: &mut Worker,
    python: &mut Worker,
) -> Vec<f64> {
    let peer = Peer::path(socket);
    let options = Options::default();
    let whole = case == WHOLE;
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        start.elapsed().as_secs_f64() * 1e6
    };
    let kind = if whole { "whole" } else { "open" };
    match variant {
        FLOOR if whole => (0..n)
            .map(|_| {
                time(&mut || {
                    let mut raw = Raw::connect(socket);
                    raw.command("query-status");
                })
            })
            .collect(),
        FLOOR => {
            let mut raw = Raw::connect(socket);
            (0..n)
                .map(|_| time(&mut || raw.command("query-status")))
                .collect()
        }
        LIB if whole => (0..n)
            .map(|_| {
                time(&mut || {
                    qmp::command(&peer, "query-status", None, None, &options).unwrap();
                })
            })
            .collect(),
        LIB => {
            let mut qmp = Qmp::connect(&peer, &options).unwrap();
            (0..n)
                .map(|_| {
                    time(&mut || {
                        qmp.execute("query-status", None, None).unwrap();
                    })
                })
                .collect()
        }
        PERL_MODULE => perl.timings_us(&format!("{kind} module {n}")),
        PERL_MUX => perl.timings_us(&format!("{kind} mux {n}")),
        PYTHON => python.timings_us(&format!("{kind} qmp {n}")),
        _ => unreachable!("{variant}"),
    }
}

fn python() -> PathBuf {
    std::env::var_os("BENCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::bench_dir().join("venv/bin/python"))
}

fn main() {
    let quick = common::quick();
    let rounds = common::env_u64("BENCH_QMP_ROUNDS", if quick { 3 } else { 40 }) as usize;
    let per_batch = common::env_u64("BENCH_QMP_BATCH", if quick { 10 } else { 25 }) as usize;
    let qemu = Qemu::start();
    let socket = qemu.socket.clone();
    let version = qemu_version(&socket);
    println!(
        "QEMU {version} (pid {}), {rounds} rounds of {per_batch} ops per variant",
        qemu.pid()
    );

    let path = socket.to_str().unwrap();
    let mut perl_cmd = common::perl_command("qmp_worker.pl");
    perl_cmd.arg(path);
    let mut perl = Worker::spawn("perl qmp worker", perl_cmd);
    let python_bin = python();
    assert!(
        python_bin.exists(),
        "{} missing: scripts/bench.sh makes the venv (pip qemu.qmp)",
        python_bin.display()
    );
    let mut python_cmd = Command::new(&python_bin);
    python_cmd
        .arg(common::repo().join("benches/python/qmp_worker.py"))
        .arg(path);
    let mut python = Worker::spawn("python qmp worker", python_cmd);

    let variants = [FLOOR, LIB, PERL_MODULE, PERL_MUX, PYTHON];
    let mut rows = Vec::new();
    for case in [WHOLE, OPEN] {
        // Warm-up: one untimed batch each (caches, lazily loaded modules).
        for v in variants {
            batch(v, case, per_batch.min(5), &socket, &mut perl, &mut python);
        }
        let mut samples = vec![Vec::new(); variants.len()];
        for round in 0..rounds {
            for i in common::order(round, variants.len()) {
                let got = batch(
                    variants[i],
                    case,
                    per_batch,
                    &socket,
                    &mut perl,
                    &mut python,
                );
                assert_eq!(got.len(), per_batch, "{}", variants[i]);
                samples[i].extend(got);
            }
        }
        for (v, s) in variants.iter().zip(samples) {
            let mut row = Row::new("qmp", case, v, "µs");
            row.samples = s;
            if *v != FLOOR {
                row = row.against(FLOOR);
            }
            if *v == LIB {
                row = row.target("<= 1.1x floor");
            }
            row.extra.insert("qemu".into(), version.clone().into());
            rows.push(row);
        }
    }
    drop(perl);
    drop(python);
    drop(qemu);
    common::emit(&rows);
}
