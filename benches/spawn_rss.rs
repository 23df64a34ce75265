//! Compressor spawn against the caller's resident memory: spawn + wait of `true` (stdin a
//! new pipe whose write end is closed at once, stdout /dev/null) from a process holding a
//! touched heap of 100 MiB, 1 GiB and 4 GiB (quick: 16 and 128 MiB), by
//!
//! - this library from Rust (`Compressor::spawn`, posix_spawn), a plain fork + exec from
//!   Rust (pipe, fork, dup2 in the child, exec; the baseline) and a bare `posix_spawnp`
//!   from Rust (pipe, two dup2 file actions; what spawning costs without the library), in
//!   one process,
//! - this library from C (`vzdump_qemu_compressor_spawn`, `benches/c/spawn_bench.c`),
//! - this library from Perl (`fork_compressor_pipe` + `wait_compressor`) and the seed's way
//!   (Perl's `fork` + `exec`, as the seed's `$fork_compressor_pipe`: pipe, fork, dup2 in the
//!   child, exec), in one Perl process holding the heap as a string
//!   (`benches/perl/spawn_worker.pl`).
//!
//! The three processes hold their heaps at the same time and the variants alternate in
//! batches, round by round; when the machine lacks the memory for three heaps at once, the
//! processes run one after the other (the two variants of a process still alternate) and
//! the rows say so. Settings: `BENCH_SPAWN_ROUNDS` (default 10, quick 3),
//! `BENCH_SPAWN_BATCH` (default 10, quick 5), `BENCH_SPAWN_SIZES_MIB` (comma-separated).

mod common;

use std::ffi::CString;
use std::fs::File;
use std::io::{BufRead, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Row, Worker};
use serde_json::json;
use vzdump_qemu::compressor::{CommandSpec, Compressor, SpawnOptions};

const MIB: u64 = 1 << 20;

const LIB: &str = "library, Rust (posix_spawn)";
const FORK: &str = "fork+exec, Rust";
const POSIX_SPAWN: &str = "posix_spawnp, Rust (no library)";
const C_LIB: &str = "library via C API";
const PERL_MODULE: &str = "library via Perl module";
const PERL_SEED: &str = "seed's way (Perl fork+exec)";

fn main() {
    if let Ok(heap) = std::env::var("SPAWN_RSS_WORKER_HEAP") {
        return worker(heap.parse().unwrap());
    }
    let quick = common::quick();
    let sizes: Vec<u64> = match std::env::var("BENCH_SPAWN_SIZES_MIB") {
        Ok(list) => list.split(',').map(|s| s.trim().parse().unwrap()).collect(),
        Err(_) if quick => vec![16, 128],
        Err(_) => vec![100, 1024, 4096],
    };
    let rounds = common::env_u64("BENCH_SPAWN_ROUNDS", if quick { 3 } else { 10 }) as usize;
    let per_batch = common::env_u64("BENCH_SPAWN_BATCH", if quick { 5 } else { 10 });
    let thp =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    println!(
        "transparent huge pages: {}; {rounds} rounds of {per_batch} spawns per variant",
        thp.trim()
    );
    let c_bin = common::c_program("spawn_bench");

    let mut rows = Vec::new();
    for size in sizes {
        let bytes = size * MIB;
        let case = if size >= 1024 && size % 1024 == 0 {
            format!("spawn+wait `true`, {} GiB heap", size / 1024)
        } else {
            format!("spawn+wait `true`, {size} MiB heap")
        };
        // Three heaps at once, and room to spare for the rest of the machine.
        let together = common::mem_available() > 3 * bytes + 2048 * MIB;
        let start = |which: usize| -> Worker {
            match which {
                0 => {
                    let mut c = Command::new(std::env::current_exe().unwrap());
                    c.env("SPAWN_RSS_WORKER_HEAP", bytes.to_string());
                    Worker::spawn("rust spawn worker", c)
                }
                1 => {
                    let mut c = Command::new(&c_bin);
                    c.arg(bytes.to_string());
                    Worker::spawn("C spawn worker", c)
                }
                _ => {
                    let mut c = common::perl_command("spawn_worker.pl");
                    c.arg(bytes.to_string());
                    Worker::spawn("perl spawn worker", c)
                }
            }
        };
        // (variant, worker index, request)
        let variants = [
            (FORK, 0, "fork"),
            (POSIX_SPAWN, 0, "posix_spawn"),
            (LIB, 0, "lib"),
            (C_LIB, 1, "lib"),
            (PERL_MODULE, 2, "module"),
            (PERL_SEED, 2, "seed"),
        ];
        let mut samples = vec![Vec::new(); variants.len()];
        let mut rss = [0u64; 3];
        let groups: Vec<Vec<usize>> = if together {
            vec![vec![0, 1, 2]]
        } else {
            vec![vec![0], vec![1], vec![2]]
        };
        for group in groups {
            let mut workers: Vec<Option<Worker>> = (0..3)
                .map(|w| group.contains(&w).then(|| start(w)))
                .collect();
            for (w, worker) in workers.iter_mut().enumerate() {
                if let Some(worker) = worker {
                    rss[w] = worker.ask("rss").trim_start_matches("ok ").parse().unwrap();
                }
            }
            let active: Vec<usize> = (0..variants.len())
                .filter(|&v| group.contains(&variants[v].1))
                .collect();
            // Warm-up.
            for &v in &active {
                let (_, w, request) = variants[v];
                workers[w].as_mut().unwrap().ask(&format!("{request} 2"));
            }
            for round in 0..rounds {
                for i in common::order(round, active.len()) {
                    let v = active[i];
                    let (name, w, request) = variants[v];
                    let got = workers[w]
                        .as_mut()
                        .unwrap()
                        .timings_us(&format!("{request} {per_batch}"));
                    assert_eq!(got.len() as u64, per_batch, "{name}");
                    samples[v].extend(got);
                }
            }
        }
        for (v, s) in samples.into_iter().enumerate() {
            let (name, w, _) = variants[v];
            let mut row = Row::new("spawn", &case, name, "ms");
            row.samples = s.iter().map(|us| us / 1000.0).collect();
            if name != FORK {
                row = row.against(FORK);
            }
            if [LIB, C_LIB, PERL_MODULE].contains(&name) {
                row = row.target("<= 1 ms, flat across sizes");
            }
            row.extra
                .insert("caller_rss_mib".into(), json!(rss[w] / 1024));
            row.extra.insert(
                "interleaved".into(),
                json!(if together {
                    "all variants"
                } else {
                    "within each process (not enough memory for three heaps)"
                }),
            );
            rows.push(row);
        }
        println!(
            "{case}: caller RSS rust {} MiB, C {} MiB, perl {} MiB{}",
            rss[0] / 1024,
            rss[1] / 1024,
            rss[2] / 1024,
            if together {
                ""
            } else {
                " (one process at a time)"
            }
        );
    }
    common::emit(&rows);
}

/// The Rust worker: holds `heap` touched bytes and times spawns on request.
fn worker(heap: u64) {
    let data = vec![0x5a_u8; heap as usize];
    std::hint::black_box(&data);
    let null = File::options().write(true).open("/dev/null").unwrap();
    let command = CommandSpec::Line("true".into());
    let program = CString::new("true").unwrap();
    let argv = [program.as_ptr(), std::ptr::null()];
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["hello"] => "ok".to_string(),
            ["rss"] => format!("ok {}", common::vm_rss_kib()),
            ["quit"] => break,
            [what @ ("lib" | "fork" | "posix_spawn"), n] => {
                let n: usize = n.parse().unwrap();
                let times: Vec<String> = (0..n)
                    .map(|_| {
                        let start = Instant::now();
                        match *what {
                            "lib" => {
                                let (mut compressor, pipe) = Compressor::spawn(
                                    &command,
                                    null.as_fd(),
                                    &SpawnOptions::default(),
                                )
                                .unwrap();
                                drop(pipe);
                                compressor.wait(Duration::from_secs(10)).unwrap();
                            }
                            "fork" => fork_exec(&argv, null.as_raw_fd()),
                            _ => posix_spawn(&argv, null.as_raw_fd()),
                        }
                        start.elapsed().as_nanos().to_string()
                    })
                    .collect();
                times.join(" ")
            }
            _ => format!("error: unknown request '{line}'"),
        };
        writeln!(out, "{answer}").unwrap();
        out.flush().unwrap();
    }
    drop(data);
}

/// The classic way: a pipe, fork, stdin and stdout redirected in the child, exec; the
/// parent closes both ends of the pipe and waits.
fn fork_exec(argv: &[*const libc::c_char; 2], stdout: libc::c_int) {
    let mut fds = [0; 2];
    // SAFETY: plain syscalls; the child only calls async-signal-safe functions (dup2,
    // execvp, _exit) on data prepared before the fork.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            libc::dup2(fds[0], 0);
            libc::dup2(stdout, 1);
            libc::execvp(argv[0], argv.as_ptr());
            libc::_exit(127);
        }
        libc::close(fds[0]);
        libc::close(fds[1]);
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        assert_eq!(status, 0);
    }
}

/// The bare way without fork: a pipe and `posix_spawnp` with two dup2 file actions, then
/// close and wait. What the library does, minus its checks, environment and pidfd.
fn posix_spawn(argv: &[*const libc::c_char; 2], stdout: libc::c_int) {
    extern "C" {
        static environ: *const *mut libc::c_char;
    }
    let mut fds = [0; 2];
    // SAFETY: plain libc calls on initialised structures; argv is NULL-terminated.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        let mut actions = std::mem::MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
        assert_eq!(libc::posix_spawn_file_actions_init(actions.as_mut_ptr()), 0);
        let mut actions = actions.assume_init();
        libc::posix_spawn_file_actions_adddup2(&mut actions, fds[0], 0);
        libc::posix_spawn_file_actions_adddup2(&mut actions, stdout, 1);
        let mut pid = 0;
        let rc = libc::posix_spawnp(
            &mut pid,
            argv[0],
            &actions,
            std::ptr::null(),
            argv.as_ptr() as *const *mut libc::c_char,
            environ,
        );
        assert_eq!(rc, 0, "posix_spawnp failed");
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::close(fds[0]);
        libc::close(fds[1]);
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        assert_eq!(status, 0);
    }
}
