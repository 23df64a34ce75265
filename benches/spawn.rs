//! Benchmarks of the compressor pipe (needs `[[bench]] name = "spawn", harness = false`).
//!
//! Run: `cargo bench --bench spawn`. Environment knobs: `BENCH_HEAP_MIB` (touched heap
//! while spawning, default 2048), `BENCH_SPAWNS` (spawns per measurement, default 50),
//! `BENCH_PIPE_MIB` (data pushed per pipe measurement, default 1024), `BENCH_PIPE_RUNS`
//! (measurements per pipe size, default 7).
//!
//! 1. Spawn + wait of `true`: `Compressor::spawn` (posix_spawn) against a fork + exec
//!    baseline, without and with a large touched heap, which fork has to copy page tables
//!    for and posix_spawn does not.
//! 2. Throughput of the pipe into `zstd -1 -T1` and `cat` (both writing to /dev/null) with
//!    the kernel's 64 KiB pipe and with a 1 MiB pipe (the library's default).

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use vzdump_qemu::compressor::{CommandSpec, Compressor, SpawnOptions};

const MIB: usize = 1 << 20;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn dev_null() -> File {
    File::options().write(true).open("/dev/null").unwrap()
}

fn main() {
    let heap_mib = env_usize("BENCH_HEAP_MIB", 2048);
    let spawns = env_usize("BENCH_SPAWNS", 50);
    let pipe_mib = env_usize("BENCH_PIPE_MIB", 1024);
    let thp =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    println!("transparent huge pages: {}", thp.trim());

    println!("\n== spawn + wait of `true`, {spawns} times ==");
    let small = spawn_round(spawns);
    let heap = touched_heap(heap_mib * MIB);
    let large = spawn_round(spawns);
    std::hint::black_box(&heap);
    drop(heap);
    println!(
        "posix_spawn is {:.1}x faster than fork+exec with a {heap_mib} MiB heap \
         ({:.1}x with a small heap); fork slows down {:.1}x, posix_spawn {:.1}x",
        large.1 / large.0,
        small.1 / small.0,
        large.1 / small.1,
        large.0 / small.0,
    );

    let runs = env_usize("BENCH_PIPE_RUNS", 7);
    println!("\n== pipe throughput, {pipe_mib} MiB in 1 MiB writes, {runs} interleaved runs ==");
    let data = mixed_data(8 * MIB);
    let sizes = [("64 KiB (kernel)", None), ("1 MiB", Some(MIB))];
    for command in ["zstd -1 -T1", "cat"] {
        let mut rates = vec![Vec::new(); sizes.len()];
        // Interleaved, so that load from other processes hits both sizes alike.
        for _ in 0..runs {
            for (rate, (_, pipe_size)) in rates.iter_mut().zip(sizes) {
                rate.push(push(command, pipe_size, pipe_mib * MIB, &data));
            }
        }
        for (rate, (label, _)) in rates.iter_mut().zip(sizes) {
            rate.sort_by(f64::total_cmp);
            println!(
                "{command:<12} pipe {label:<17} median {:6.0} MiB/s  (min {:.0}, max {:.0})",
                rate[rate.len() / 2],
                rate[0],
                rate[rate.len() - 1],
            );
        }
    }
}

/// Mean milliseconds per spawn + wait: (posix_spawn, fork + exec).
fn spawn_round(spawns: usize) -> (f64, f64) {
    let null = dev_null();
    let command = CommandSpec::Line("true".into());
    let ours = time_per_call(spawns, || {
        let (mut compressor, pipe) =
            Compressor::spawn(&command, null.as_fd(), &SpawnOptions::default()).unwrap();
        drop(pipe);
        compressor.wait(Duration::from_secs(10)).unwrap();
    });
    let program = CString::new("true").unwrap();
    let argv = [program.as_ptr(), std::ptr::null()];
    let baseline = time_per_call(spawns, || fork_exec(&argv, null.as_raw_fd()));
    println!(
        "  posix_spawn {ours:8.3} ms   fork+exec {baseline:8.3} ms   (RSS {} MiB)",
        rss_mib()
    );
    (ours, baseline)
}

fn time_per_call(count: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..count {
        f();
    }
    start.elapsed().as_secs_f64() * 1000.0 / count as f64
}

/// The classic way, as the Perl seed does it: fork, redirect stdout, exec, wait.
fn fork_exec(argv: &[*const libc::c_char; 2], stdout: RawFd) {
    // SAFETY: the child only calls async-signal-safe functions (dup2, execvp, _exit) on
    // data prepared before the fork.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            libc::dup2(stdout, 1);
            libc::execvp(argv[0], argv.as_ptr());
            libc::_exit(127);
        }
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        assert_eq!(status, 0);
    }
}

/// `len` bytes, every page written, like the heap of a big Perl process.
fn touched_heap(len: usize) -> Vec<u8> {
    let start = Instant::now();
    let heap = vec![0x5a_u8; len];
    println!(
        "  touched {} MiB in {:.1} s",
        len / MIB,
        start.elapsed().as_secs_f64()
    );
    heap
}

fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// Pushes `total` bytes (repeating `data`) through `command` into /dev/null; MiB/s.
fn push(command: &str, pipe_size: Option<usize>, total: usize, data: &[u8]) -> f64 {
    let null = dev_null();
    let options = SpawnOptions { pipe_size };
    let (mut compressor, pipe) =
        Compressor::spawn(&CommandSpec::Line(command.into()), null.as_fd(), &options).unwrap();
    let mut pipe = File::from(pipe);
    let start = Instant::now();
    let mut left = total;
    'outer: loop {
        for piece in data.chunks(MIB) {
            let piece = &piece[..piece.len().min(left)];
            pipe.write_all(piece).unwrap();
            left -= piece.len();
            if left == 0 {
                break 'outer;
            }
        }
    }
    drop(pipe);
    compressor.wait(Duration::from_secs(600)).unwrap();
    (total / MIB) as f64 / start.elapsed().as_secs_f64()
}

/// Quarter random, quarter zeros, quarter text, quarter half random: like a VM disk.
fn mixed_data(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut data = vec![0u8; len];
    for (index, piece) in data.chunks_mut(MIB).enumerate() {
        let random = match index % 4 {
            0 => piece.len(),
            3 => piece.len() / 2,
            _ => 0,
        };
        for word in piece[..random].chunks_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let value = state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            word.copy_from_slice(&value[..word.len()]);
        }
        if index % 4 == 2 {
            for (dst, src) in piece
                .iter_mut()
                .zip(b"some text in a VM disk; ".iter().cycle())
            {
                *dst = *src;
            }
        }
    }
    data
}
