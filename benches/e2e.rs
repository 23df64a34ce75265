//! End to end: a 2 GiB disk image (30 % holes, 30 % text, 40 % random data, in 16 MiB
//! extents; quick: 64 MiB in 1 MiB extents) backed up by `pve-qmp-sim --disk` without a
//! rate cap, with its default progress shape (pve-qemu's bursts; the shape only moves the
//! moment the end is noticed, by milliseconds, alike for every variant), by
//!
//! - the simulator writing the VMA into a file by itself (`backup` with a plain path as
//!   `backup-file`, see `sim/src/backup.rs` `open_target`; the baseline of the library
//!   without compressor),
//! - this library: the output file's fd (no compressor), or a compressor pipe into
//!   `zstd --threads=1` (vzdump's default) or `lzop` (`Compressor::spawn`, `start_vma`,
//!   `Poller`, `wait`), zstd also with the kernel's 64 KiB pipe instead of the library's
//!   1 MiB (`SpawnOptions::pipe_size`),
//! - the compressor alone on the same bytes: the simulator's VMA file piped by `cat`
//!   (through a 1 MiB pipe) into `zstd --threads=1` or `lzop` (the baselines of the
//!   compressed rows).
//!
//! Each time runs from the `backup` command (or the start of `cat`) until the job is done
//! and the compressor has exited; the end of the job is noticed by the library's `Poller`
//! in every variant but the compressors alone. The variants alternate round by round. The
//! image is kept in `target/bench` between runs; the outputs go to `/dev/shm` (tmpfs) unless
//! `BENCH_E2E_ON_DISK=1`. Settings: `BENCH_E2E_ROUNDS` (default 7, quick 1),
//! `BENCH_E2E_DISK_MIB` (default 2048, quick 64).

mod common;

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Row;
use serde_json::json;
use vzdump_qemu::backup::VmaParams;
use vzdump_qemu::compressor::{CommandSpec, Compressor, SpawnOptions, DEFAULT_PIPE_SIZE};
use vzdump_qemu::qmp::{self, Options, Peer};

const MIB: u64 = 1 << 20;
const ZSTD: &str = "zstd --threads=1";
const LZOP: &str = "lzop";

const SIM_FILE: &str = "simulator writes the file itself";
const LIB_NONE: &str = "library, no compressor";
const ZSTD_ALONE: &str = "zstd alone on the VMA (cat | zstd)";
const LIB_ZSTD: &str = "library + zstd (1 MiB pipe)";
const LIB_ZSTD_64K: &str = "library + zstd (64 KiB pipe)";
const LZOP_ALONE: &str = "lzop alone on the VMA (cat | lzop)";
const LIB_LZOP: &str = "library + lzop (1 MiB pipe)";

/// The image: holes, text and random data in `extent`-sized pieces, by index mod 10
/// (0-2 holes, 3-5 text, 6-9 random). Written once, kept (named by size and layout).
fn disk_image(size_mib: u64) -> PathBuf {
    let extent = if size_mib >= 512 { 16 * MIB } else { MIB };
    let path = common::bench_dir().join(format!("disk-{size_mib}M-v1.raw"));
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == size_mib * MIB) {
        return path;
    }
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).unwrap();
    file.set_len(size_mib * MIB).unwrap();
    let text: Vec<u8> =
        b"INFO: vzdump-qemu bench: the quick brown fox jumps over the lazy dog 0123\n"
            .iter()
            .copied()
            .cycle()
            .take(MIB as usize)
            .collect();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut random = vec![0u8; MIB as usize];
    for index in 0..(size_mib * MIB / extent) {
        let kind = index % 10;
        if kind < 3 {
            continue;
        }
        file.seek(SeekFrom::Start(index * extent)).unwrap();
        for _ in 0..extent / MIB {
            if kind < 6 {
                file.write_all(&text).unwrap();
            } else {
                for word in random.chunks_mut(8) {
                    state ^= state >> 12;
                    state ^= state << 25;
                    state ^= state >> 27;
                    word.copy_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
                }
                file.write_all(&random).unwrap();
            }
        }
    }
    file.sync_all().unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

fn params() -> VmaParams {
    VmaParams {
        devlist: Some("drive-scsi0".into()),
        ..VmaParams::default()
    }
}

/// The simulator writes the VMA to `out` by itself; seconds until done.
fn sim_file(peer: &Peer, out: &Path) -> f64 {
    let start = Instant::now();
    let args = json!({
        "backup-file": out.to_str().unwrap(),
        "devlist": "drive-scsi0",
        "speed": 0,
    });
    let reply = qmp::command(peer, "backup", Some(args), None, &Options::default()).unwrap();
    common::wait_done(peer, reply["UUID"].as_str().unwrap());
    start.elapsed().as_secs_f64()
}

/// Through the library into `out`, with `compressor` (or straight into the file).
fn library(peer: &Peer, out: &Path, compressor: Option<&str>, pipe_size: Option<usize>) -> f64 {
    let file = File::create(out).unwrap();
    let start = Instant::now();
    let spawned = compressor.map(|c| {
        Compressor::spawn(
            &CommandSpec::Line(c.into()),
            file.as_fd(),
            &SpawnOptions { pipe_size },
        )
        .unwrap()
    });
    let (mut compressor, target): (Option<Compressor>, Option<OwnedFd>) = match spawned {
        Some((c, pipe)) => (Some(c), Some(pipe)),
        None => (None, None),
    };
    let fd = target.as_ref().map_or(file.as_fd(), |p| p.as_fd());
    let uuid = common::start_vma(peer, fd, &params());
    // QEMU has its copy: the compressor sees EOF when the job closes it.
    drop(target);
    common::wait_done(peer, &uuid);
    if let Some(c) = compressor.as_mut() {
        c.wait(Duration::from_secs(600)).unwrap();
    }
    start.elapsed().as_secs_f64()
}

/// `cat vma | compressor > out` through a 1 MiB pipe; seconds until both exited.
fn alone(vma: &Path, compressor: &str, out: &Path) -> f64 {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    nix::fcntl::fcntl(
        &write,
        nix::fcntl::FcntlArg::F_SETPIPE_SZ(DEFAULT_PIPE_SIZE as i32),
    )
    .unwrap();
    let out = File::create(out).unwrap();
    let start = Instant::now();
    let mut words = compressor.split_whitespace();
    let mut comp = Command::new(words.next().unwrap())
        .args(words)
        .stdin(Stdio::from(read))
        .stdout(Stdio::from(out))
        .spawn()
        .unwrap();
    let mut cat = Command::new("cat")
        .arg(vma)
        .stdout(Stdio::from(write))
        .spawn()
        .unwrap();
    assert!(cat.wait().unwrap().success());
    assert!(comp.wait().unwrap().success());
    start.elapsed().as_secs_f64()
}

fn main() {
    let quick = common::quick();
    let rounds = common::env_u64("BENCH_E2E_ROUNDS", if quick { 1 } else { 7 }) as usize;
    let disk_mib = common::env_u64("BENCH_E2E_DISK_MIB", if quick { 64 } else { 2048 });
    let made = Instant::now();
    let image = disk_image(disk_mib);
    println!(
        "image {} ({disk_mib} MiB, {:.1} s to make or find)",
        image.display(),
        made.elapsed().as_secs_f64()
    );
    // Outputs go to tmpfs where there is one: the disk's writeback would otherwise throttle
    // whichever variant runs when the dirty limit is reached, and the rows compare the
    // data path, not the disk.
    let shm = Path::new("/dev/shm");
    let scratch = if std::env::var_os("BENCH_E2E_ON_DISK").is_none()
        && shm.is_dir()
        && nix::unistd::access(shm, nix::unistd::AccessFlags::W_OK).is_ok()
    {
        common::Scratch::under(shm, "vzdump-qemu-bench-e2e")
    } else {
        common::Scratch::new("e2e")
    };
    println!("outputs in {}", scratch.0.display());
    let disk = format!("drive-scsi0={}", image.display());
    let sim = common::start_sim("bench-e2e", &["--disk", &disk]);
    let peer = Peer::path(&sim.socket);
    // The uncompressed VMA the compressors alone get, made by the simulator itself (and
    // the warm-up of the image in the page cache).
    let reference = scratch.path("reference.vma");
    let _ = std::fs::remove_file(&reference);
    sim_file(&peer, &reference);
    let vma_bytes = std::fs::metadata(&reference).unwrap().len();
    println!("VMA of the image: {:.1} MiB", vma_bytes as f64 / MIB as f64);

    let variants = [
        SIM_FILE,
        LIB_NONE,
        ZSTD_ALONE,
        LIB_ZSTD,
        LIB_ZSTD_64K,
        LZOP_ALONE,
        LIB_LZOP,
    ];
    let mut samples = vec![Vec::new(); variants.len()];
    let mut sizes = vec![0u64; variants.len()];
    for round in 0..rounds {
        for i in common::order(round, variants.len()) {
            let out = scratch.path(&format!("out-{i}"));
            let _ = std::fs::remove_file(&out);
            let secs = match variants[i] {
                SIM_FILE => sim_file(&peer, &out),
                LIB_NONE => library(&peer, &out, None, None),
                ZSTD_ALONE => alone(&reference, ZSTD, &out),
                LIB_ZSTD => library(&peer, &out, Some(ZSTD), Some(DEFAULT_PIPE_SIZE)),
                LIB_ZSTD_64K => library(&peer, &out, Some(ZSTD), None),
                LZOP_ALONE => alone(&reference, LZOP, &out),
                LIB_LZOP => library(&peer, &out, Some(LZOP), Some(DEFAULT_PIPE_SIZE)),
                _ => unreachable!(),
            };
            sizes[i] = std::fs::metadata(&out).unwrap().len();
            if variants[i] == LIB_NONE || variants[i] == SIM_FILE {
                assert_eq!(sizes[i], vma_bytes, "{}: VMA of another size", variants[i]);
            }
            let _ = std::fs::remove_file(&out);
            println!("  round {round}: {:<36} {secs:7.2} s", variants[i]);
            samples[i].push(secs);
        }
    }
    drop(sim);

    let case = format!("backup of a {disk_mib} MiB disk");
    let mut rows = Vec::new();
    for (i, s) in samples.into_iter().enumerate() {
        let name = variants[i];
        let mut row = Row::new("e2e", &case, name, "s");
        let (median, _) = common::median_p95(&s);
        row.samples = s;
        row = match name {
            LIB_NONE => row
                .against(SIM_FILE)
                .target("<= 1.02x simulator writing the file"),
            LIB_ZSTD => row.against(ZSTD_ALONE),
            LIB_ZSTD_64K => row.against(LIB_ZSTD),
            LIB_LZOP => row.against(LZOP_ALONE),
            _ => row,
        };
        row.extra
            .insert("output_mib".into(), json!(sizes[i] as f64 / MIB as f64));
        row.extra
            .insert("output_dir".into(), json!(scratch.0.display().to_string()));
        row.extra
            .insert("disk_mib_per_s".into(), json!(disk_mib as f64 / median));
        rows.push(row);
    }
    common::emit(&rows);
}
