//! `pve-qmp-sim`: a simulator of Proxmox VE's QEMU as its QMP monitor shows it, for testing
//! backup clients (vzdump's QEMU plugin and its Rust rewrite) without a VM.
//!
//! Covered, with QEMU's wire behaviour and texts (proxmox/pve-qemu's `pve-backup.c` and
//! QAPI schema, QEMU's QMP specification): the greeting and capabilities negotiation, one client at a
//! time, input split on balanced JSON objects, ids echoed, QAPI argument errors, member order
//! of QEMU's output; `getfd`/`closefd` with SCM_RIGHTS; `backup` (VMA into a passed fd, a
//! FIFO or a new file; PBS with simulated progress and dirty bitmaps), `query-backup`,
//! `backup-cancel` (with the cancel-after-done quirk), `query-proxmox-support`,
//! `query-pbs-bitmap-info`, `query-status`, `cont`, `stop`, `query-version`, `quit`, and
//! the events STOP/RESUME/SHUTDOWN and JOB_STATUS_CHANGE/BLOCK_JOB_COMPLETED/
//! BLOCK_JOB_CANCELLED of the backup jobs. Faults can be injected: death, job and write
//! errors, wrong uuid, hung or garbled replies, slow replies, bad counters.
//!
//! As measured against pve-qemu 10.0:
//! - job events are always sent (`--sim-tick` adds a `SIM_TICK` event QEMU does not have);
//! - VMA jobs never report `finishing: true`; only a PBS job has a finishing phase;
//! - `--pidfile` writes a pid file that qemu-server's `vm_running_locally` accepts (the
//!   process re-executes itself as `qemu-system-pve-sim` for that);
//! - VMA counters advance in bursts, 1 MiB then 1 MiB + k * 2 MiB (see `worker.rs`);
//! - a devlist naming a device twice kills the process by SIGSEGV, as it does pve-qemu
//!   10.0.2.
//!
//! Not covered: there is no guest and no block layer. Devices are raw files read as they
//! are or generated data; nothing talks to a Proxmox Backup Server (PBS backups only
//! count); no `exec:` or `/dev/fdset` targets, `add-fd`, fleecing images beyond a size
//! check, backup-access API, `query-commands` or other QEMU commands; no QGA socket.
//! `max-workers`, `compress`, `keyfile` and the other PBS options are accepted, not used.

mod args;
mod backup;
mod cli;
mod disk;
mod dispatch;
mod fds;
mod input;
mod job;
mod monitor;
mod output;
mod qapi;
mod qjson;
mod state;
mod target;
mod worker;

use std::ffi::CString;
use std::fs::OpenOptions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::exit;
use std::sync::Arc;

use nix::sys::signal::{signal, SigHandler, SigSet, Signal};

use crate::args::{Config, Mode};
use crate::disk::Disk;
use crate::monitor::Served;
use crate::state::Sim;

/// The program name a `--pidfile` process runs under (see [`reexec_as_qemu`]).
const QEMU_NAME: &str = "qemu-system-pve-sim";

fn main() {
    let mode = match args::parse(std::env::args().skip(1)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("pve-qmp-sim: {e}\nTry 'pve-qmp-sim --help'.");
            exit(2);
        }
    };
    match mode {
        Mode::Help(text) => print!("{text}"),
        Mode::DumpGenDisk { name, size, path } => {
            if let Err(e) = disk::dump_generated(&name, size, &path) {
                eprintln!("pve-qmp-sim: writing {} failed: {e}", path.display());
                exit(1);
            }
        }
        Mode::Serve(cfg) => {
            if cfg.pidfile.is_some() {
                reexec_as_qemu(&cfg.args);
            }
            serve(*cfg)
        }
    }
}

/// Makes the process pass qemu-server's `vm_running_locally` (proxmox/qemu-server
/// `src/PVE/QemuServer/Helpers.pm`): `argv[0]` must match `kvm$` or
/// `(?:^|/)qemu-system-[^/]+$`, and `--pidfile` must be followed by the path as an argument
/// of its own. Unless `argv[0]` is already [`QEMU_NAME`] and the arguments are `args`, this
/// execs `/proc/self/exe` with `argv[0]` = [`QEMU_NAME`] and `args` (the arguments with
/// `--pidfile=PATH` split). execve keeps the pid; it runs before any thread is started, and
/// `serve` sets PR_SET_PDEATHSIG after it. Returns only if nothing needs to be done; exits
/// 1 if the exec fails.
fn reexec_as_qemu(args: &[String]) {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = Path::new(&argv0).file_name().map(OsStrExt::as_bytes);
    let named = name == Some(QEMU_NAME.as_bytes());
    if named && std::env::args().skip(1).eq(args.iter().cloned()) {
        return;
    }
    let argv: Result<Vec<CString>, _> = std::iter::once(QEMU_NAME)
        .chain(args.iter().map(String::as_str))
        .map(CString::new)
        .collect();
    let err = match argv {
        Ok(argv) => match nix::unistd::execv(c"/proc/self/exe", &argv) {
            Err(e) => e.to_string(),
            Ok(never) => match never {},
        },
        Err(e) => e.to_string(),
    };
    eprintln!("pve-qmp-sim: cannot re-execute as {QEMU_NAME}: {err}");
    exit(1);
}

fn serve(cfg: Config) -> ! {
    // A simulator started by a test must not outlive it.
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
        eprintln!("pve-qmp-sim: prctl(PR_SET_PDEATHSIG) failed: {e}");
    }
    // SAFETY: installs SIG_IGN, no handler code runs. QEMU ignores SIGPIPE, so a reader
    // that went away shows up as EPIPE on write (Rust's runtime does the same; stated here
    // so the behaviour does not depend on it).
    if let Err(e) = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) } {
        eprintln!("pve-qmp-sim: ignoring SIGPIPE failed: {e}");
    }
    let disks: Vec<Disk> = match cfg.disks.iter().map(Disk::open).collect() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("pve-qmp-sim: {e}");
            exit(2);
        }
    };
    // Sizes and their sum travel as QAPI 'int' (i64).
    let total = disks
        .iter()
        .try_fold(0u64, |sum, d| sum.checked_add(d.size));
    if total.is_none_or(|t| t > i64::MAX as u64) {
        eprintln!("pve-qmp-sim: the disks are too large together (limit 2^63-1 bytes)");
        exit(2);
    }
    let record = match &cfg.record {
        Some(path) => match OpenOptions::new().create(true).append(true).open(path) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!(
                    "pve-qmp-sim: cannot open record file {}: {e}",
                    path.display()
                );
                exit(2);
            }
        },
        None => None,
    };
    let socket = cfg.socket.clone();
    let listener = match bind(&socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("pve-qmp-sim: {e}");
            exit(1);
        }
    };
    // Files removed on a clean exit: the pid file first (then the VM no longer counts as
    // running), then the socket.
    let mut cleanup: Vec<PathBuf> = Vec::new();
    // Blocked before the pid file is written and before the signal thread exists: a
    // SIGTERM in between waits for that thread, which then finds the pid file to remove.
    let signals = match block_exit_signals() {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&socket);
            eprintln!("pve-qmp-sim: cannot set up signal handling: {e}");
            exit(1);
        }
    };
    if let Some(pidfile) = &cfg.pidfile {
        if let Err(e) = write_pidfile(pidfile) {
            let _ = std::fs::remove_file(&socket);
            eprintln!(
                "pve-qmp-sim: cannot write pid file {}: {e}",
                pidfile.display()
            );
            exit(1);
        }
        cleanup.push(pidfile.clone());
    }
    cleanup.push(socket.clone());
    if let Err(e) = exit_on_signals(signals, cleanup.clone()) {
        remove_all(&cleanup);
        eprintln!("pve-qmp-sim: cannot set up signal handling: {e}");
        exit(1);
    }
    let sim = Arc::new(Sim::new(cfg, disks, record));
    // One client at a time: the next one waits in the listen backlog, as with QEMU.
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                if let Served::Quit = monitor::serve(&sim, stream) {
                    break;
                }
            }
            Err(e) => {
                eprintln!("pve-qmp-sim: accept failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
    remove_all(&cleanup);
    exit(0);
}

/// Writes `<pid>\n` to `path` through a temporary file in the same directory and a rename,
/// so that a reader sees no file or the whole one.
fn write_pidfile(path: &Path) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn remove_all(paths: &[PathBuf]) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}

/// Binds the socket, replacing a stale socket file (nobody listening) but nothing else.
fn bind(path: &Path) -> Result<UnixListener, String> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(format!("{} exists and is not a socket", path.display()));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(format!("{} is in use by a running server", path.display()));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove stale socket {}: {e}", path.display()))?;
    }
    UnixListener::bind(path).map_err(|e| format!("cannot listen on {}: {e}", path.display()))
}

/// Blocks SIGTERM and SIGINT in this thread, and so in every thread started later.
fn block_exit_signals() -> nix::Result<SigSet> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.thread_block()?;
    Ok(set)
}

/// SIGTERM and SIGINT (blocked by [`block_exit_signals`]) end the process cleanly, the
/// pid file and the socket removed: a dedicated thread takes them with `sigwait`.
fn exit_on_signals(set: SigSet, cleanup: Vec<PathBuf>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if set.wait().is_ok() {
                remove_all(&cleanup);
                exit(0);
            }
        })?;
    Ok(())
}
