//! Memory: the peak RSS (`VmHWM`, printed by the program itself at its end) of one full
//! VMA backup into `zstd --threads=1` on `pve-qmp-sim` (a generated disk, no rate cap), by
//!
//! - a C program through the library (`benches/c/backup_lib.c`) against the same backup in
//!   C with plain libc (`benches/c/backup_plain.c`: fork/exec, QMP by hand, SCM_RIGHTS),
//! - a Perl script through `PVE::RS::VZDump::Qemu` (`benches/perl/backup_module.pl`)
//!   against a Perl script loading nothing but POSIX and IO (`benches/perl/backup_plain.pl`,
//!   the stream through a FIFO since plain Perl cannot pass a descriptor).
//!
//! `VmHWM` rather than `wait4`'s `ru_maxrss`: the latter also covers the children the
//! program reaped, i.e. the compressor (it is in the rows' `maxrss_with_children_mib`).
//! The programs alternate round by round. Settings: `BENCH_MEM_ROUNDS` (default 5, quick
//! 2), `BENCH_MEM_DISK_MIB` (default 512, quick 32).

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use common::Row;
use serde_json::json;

const C_PLAIN: &str = "C, plain libc (no library)";
const C_LIB: &str = "C with the library";
const PERL_PLAIN: &str = "Perl, POSIX/IO only (no module)";
const PERL_MODULE: &str = "Perl with PVE::RS::VZDump::Qemu";
const ZSTD: &str = "zstd --threads=1";

/// Runs `command`; (own peak RSS, peak RSS with reaped children), both in KiB.
// The child is reaped by `wait4`, for its rusage, not by `Child::wait`.
#[allow(clippy::zombie_processes)]
fn peak(mut command: Command) -> (u64, u64) {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 on our own child fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for the child just spawned (not reaped elsewhere).
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    assert_eq!(status, 0, "{command:?} failed: {text}");
    let own = text
        .lines()
        .find_map(|l| l.strip_prefix("vmhwm_kib "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{command:?} printed no vmhwm_kib: {text}"));
    (own, usage.ru_maxrss as u64)
}

fn main() {
    let quick = common::quick();
    let rounds = common::env_u64("BENCH_MEM_ROUNDS", if quick { 2 } else { 5 }) as usize;
    let disk_mib = common::env_u64("BENCH_MEM_DISK_MIB", if quick { 32 } else { 512 });
    let c_plain = common::c_program("backup_plain");
    let c_lib = common::c_program("backup_lib");
    let scratch = common::Scratch::new("memory");
    let disk = format!("drive-scsi0={disk_mib}M");
    let sim = common::start_sim("bench-memory", &["--gen-disk", &disk]);
    let sock = sim.socket.to_str().unwrap();
    let archive = scratch.path("out.vma.zst");
    let fifo = scratch.path("stream.fifo");
    let run = |variant: &str| -> (u64, u64) {
        let _ = std::fs::remove_file(&archive);
        let mut command;
        match variant {
            C_PLAIN => {
                command = Command::new(&c_plain);
                command
                    .arg(sock)
                    .arg(&archive)
                    .args(ZSTD.split_whitespace());
            }
            C_LIB => {
                command = Command::new(&c_lib);
                command.arg(sock).arg(&archive).arg(ZSTD);
            }
            PERL_PLAIN => {
                command = Command::new("perl");
                command
                    .arg(common::repo().join("benches/perl/backup_plain.pl"))
                    .arg(sock)
                    .arg(&archive)
                    .arg(&fifo)
                    .args(ZSTD.split_whitespace());
            }
            _ => {
                command = common::perl_command("backup_module.pl");
                command.arg(sock).arg(&archive).arg(ZSTD);
            }
        }
        let got = peak(command);
        assert!(Path::new(&archive).metadata().unwrap().len() > 0);
        got
    };
    let variants = [C_PLAIN, C_LIB, PERL_PLAIN, PERL_MODULE];
    let mut own = vec![Vec::new(); variants.len()];
    let mut with_children = vec![Vec::new(); variants.len()];
    for round in 0..rounds {
        for i in common::order(round, variants.len()) {
            let (o, w) = run(variants[i]);
            own[i].push(o as f64 / 1024.0);
            with_children[i].push(w as f64 / 1024.0);
        }
    }
    drop(sim);

    let case = format!("peak RSS, one backup ({disk_mib} MiB disk, zstd)");
    let mut rows = Vec::new();
    for (i, name) in variants.iter().enumerate() {
        let mut row = Row::new("memory", &case, name, "MiB");
        row.samples = own[i].clone();
        row = match *name {
            C_LIB => row.against(C_PLAIN),
            PERL_MODULE => row.against(PERL_PLAIN),
            _ => row,
        };
        row.extra.insert(
            "maxrss_with_children_mib".into(),
            json!(common::median_p95(&with_children[i]).0),
        );
        rows.push(row);
    }
    common::emit(&rows);
}
