//! The fault matrix (docs/reliability.md): the whole VMA backup job (`job::run_vma`)
//! against `pve-qmp-sim` as VM 100, one fault a row, and for every row the same checks: the
//! error the job returns, `backup-cancel` sent when a job may exist, the compressor reaped,
//! no descriptor left open, the caller still running, and what is left of the output. The
//! rows run one after another in one test, since descriptors and resource limits are the
//! process's: nothing else runs in this binary.
//!
//! The texts the job returns that qemu-server also prints are qemu-server's:
//! proxmox/qemu-server `src/PVE/VZDump/QemuServer.pm` (`archive_vma`, the status loop:
//! `got unexpected uuid`, `job failed with err - ...`, `backup canceled`, `interrupted by
//! signal`), `src/PVE/QMPClient.pm` (`got timeout`) and the seed's compressor check
//! (`<comp> failed - wrong exit status`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use std::io::Write;

use testkit::{signals_when, FakePeer, Sim, TempDir};
use vzdump_qemu::backup;
use vzdump_qemu::job::{self, Host, VmaJob};
use vzdump_qemu::log::Level;
use vzdump_qemu::qmp::{Options, Peer};
use vzdump_qemu::wait::SignalCheck;
use vzdump_qemu::Style;

const VMID: u32 = 100;

/// The caller: keeps the lines; says stop once the row's signals began (`stop`).
struct Caller {
    lines: Arc<Mutex<Vec<String>>>,
    /// Set when the row's signals begin; the cancel check says stop from then on.
    stop: Option<Arc<AtomicBool>>,
}

impl Host for Caller {
    fn log(&self, level: Level, text: &str) {
        self.lines
            .lock()
            .unwrap()
            .push(format!("{level:?}: {text}"));
    }
    fn start_vm_paused(&self) -> Result<(), String> {
        Err("the VM runs".into())
    }
    fn stop_vm(&self) -> Result<(), String> {
        Err("the VM runs".into())
    }
    fn cancelled(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }
}

/// What the compressor command writes its pid to (it runs through /bin/sh).
const PID_FILE: &str = "compressor.pid";

/// One row: the simulator's fault flags, the compressor, and what the caller does.
struct Row {
    name: &'static str,
    sim: &'static [&'static str],
    /// Run through the shell after it wrote its pid (`{}`: the pid file).
    compressor: &'static str,
    options: fn(&mut Options),
    /// Soft RLIMIT_FSIZE (bytes) for the job.
    fsize: Option<u64>,
    /// How many descriptors the job may open: RLIMIT_NOFILE just above that many free numbers.
    nofile_headroom: Option<usize>,
    /// SIGUSR1 every 20 ms from this point on.
    signals: Option<SignalsFrom>,
    stop_at_signal: bool,
    /// Kill the compressor (SIGKILL; the test's own grandchild) this long after it started.
    kill_compressor_ms: Option<u64>,
    /// The error, or None for a job that must succeed.
    error: Option<&'static str>,
    /// The lines the caller must have been given last (none: not checked).
    last_lines: &'static [&'static str],
    /// Whether the job may have existed in QEMU when it failed.
    cancel: bool,
}

/// When a row's signals begin: at a point of the job the test observes, not after a time
/// that a slow machine could overrun.
#[derive(Clone, Copy)]
enum SignalsFrom {
    /// With the job.
    Start,
    /// Once the simulator received this command (it records a request before it runs it).
    Received(&'static str),
    /// This many ms after the caller was given a line that contains this text.
    Logged(&'static str, u64),
}

const BASE: Row = Row {
    name: "",
    sim: &[],
    compressor: "zstd -q",
    options: |_| {},
    fsize: None,
    nofile_headroom: None,
    signals: None,
    stop_at_signal: false,
    kill_compressor_ms: None,
    error: None,
    last_lines: &[],
    cancel: false,
};

fn rows() -> Vec<Row> {
    vec![
        Row {
            name: "no fault",
            ..BASE
        },
        // proxmox/qemu-server src/PVE/QemuServer/Monitor.pm `mon_cmd`: the running check;
        // the abort's cancel cannot reach QEMU either, and says so
        // (src/PVE/VZDump/QemuServer.pm `archive_vma`: "aborting backup job").
        Row {
            name: "QEMU killed mid-backup",
            sim: &["--fault-die-at", "30"],
            error: Some("VM 100 not running"),
            last_lines: &["Info: aborting backup job", "Err: VM 100 not running"],
            cancel: false,
            ..BASE
        },
        // proxmox/qemu-server src/PVE/QMPClient.pm `mux_timeout`: "got timeout".
        Row {
            name: "QEMU hangs on the status query",
            sim: &["--fault-hang", "query-backup"],
            options: |o| o.command_timeout = Some(Duration::from_millis(1500)),
            error: Some("VM 100 qmp command 'query-backup' failed - got timeout"),
            cancel: true,
            ..BASE
        },
        Row {
            name: "garbage (invalid UTF-8) instead of the status",
            sim: &["--fault-garbage", "query-backup"],
            error: Some("VM 100 qmp command 'query-backup' failed - unexpected data outside a JSON object: '\\xffgarbage-reply: this is not JSON\\r\\n'"),
            cancel: true,
            ..BASE
        },
        Row {
            name: "a status reply over the size limit",
            options: |o| o.max_message_size = 250,
            error: Some("VM 100 qmp command 'query-backup' failed - message exceeds the size limit of 250 bytes"),
            cancel: true,
            ..BASE
        },
        // proxmox/qemu-server src/PVE/VZDump/QemuServer.pm, the status loop.
        Row {
            name: "wrong uuid",
            sim: &["--fault-wrong-uuid"],
            error: Some("got unexpected uuid"),
            cancel: true,
            ..BASE
        },
        // The status loop's "job failed with err - <errmsg>" (qemu-server as above) with
        // the simulator's errmsg.
        Row {
            name: "job error status",
            sim: &["--fault-error-at", "30"],
            error: Some("job failed with err -5 - Input/output error"),
            cancel: true,
            ..BASE
        },
        // QEMU's errmsg when the pipe breaks: proxmox/pve-qemu, the VMA writer's
        // `vma_queue_write: write error - %s`.
        Row {
            name: "compressor killed",
            kill_compressor_ms: Some(400),
            error: Some("vma_queue_write: write error - Broken pipe"),
            cancel: true,
            ..BASE
        },
        Row {
            name: "compressor exits early",
            compressor: "head -c 65536",
            error: Some("vma_queue_write: write error - Broken pipe"),
            cancel: true,
            ..BASE
        },
        Row {
            name: "output file system full (RLIMIT_FSIZE 1 MiB)",
            compressor: "cat",
            fsize: Some(1 << 20),
            error: Some("vma_queue_write: write error - Broken pipe"),
            cancel: true,
            ..BASE
        },
        Row {
            name: "too few descriptors for the compressor (RLIMIT_NOFILE)",
            // The output file, the pipe's two ends and the pipe's copy above stdio; the fifth,
            // the output's copy, fails. (The prologue's QMP connections close before.)
            nofile_headroom: Some(4),
            error: Some("unable to duplicate compressor output fd - Too many open files (os error 24)"),
            ..BASE
        },
        // The seed's handlers' text, proxmox/qemu-server src/PVE/VZDump/QemuServer.pm.
        Row {
            name: "a signal during the status loop, the caller stops",
            signals: Some(SignalsFrom::Received("query-backup")),
            stop_at_signal: true,
            error: Some("interrupted by signal"),
            cancel: true,
            ..BASE
        },
        Row {
            name: "a signal during the start (replies 300 ms late), the caller stops",
            sim: &["--fault-slow-ms", "300"],
            signals: Some(SignalsFrom::Received("backup")),
            stop_at_signal: true,
            error: Some("interrupted by signal"),
            cancel: true,
            ..BASE
        },
        Row {
            name: "a signal during the compressor wait, the caller stops",
            compressor: "sh -c 'zstd -q; sleep 3'",
            // The loop's last line is the job's last step before the wait; the compressor
            // then sleeps 3 s.
            signals: Some(SignalsFrom::Logged("transferred ", 300)),
            stop_at_signal: true,
            error: Some("interrupted by signal"),
            cancel: false,
            ..BASE
        },
        Row {
            name: "a signal flood during the cancel of a failed job",
            sim: &["--fault-error-at", "30"],
            signals: Some(SignalsFrom::Start),
            options: |o| o.on_signal = Some(SignalCheck::never()),
            error: Some("job failed with err -5 - Input/output error"),
            cancel: true,
            ..BASE
        },
        Row {
            name: "a signal flood, the caller's signal check goes on",
            signals: Some(SignalsFrom::Start),
            options: |o| o.on_signal = Some(SignalCheck::never()),
            ..BASE
        },
    ]
}

/// Whether the job has reached `from`, as the test sees it.
fn phase_reached(
    from: SignalsFrom,
    record: &Path,
    lines: &Arc<Mutex<Vec<String>>>,
) -> impl Fn() -> bool + Send + 'static {
    let (record, lines) = (record.to_path_buf(), lines.clone());
    let logged_at = Mutex::new(None::<Instant>);
    move || match from {
        SignalsFrom::Start => true,
        // Whole lines only: the simulator may be writing the next one.
        SignalsFrom::Received(command) => std::fs::read_to_string(&record)
            .unwrap_or_default()
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|r| r["execute"] == command),
        SignalsFrom::Logged(start, ms) => {
            let mut at = logged_at.lock().unwrap();
            if at.is_none() && lines.lock().unwrap().iter().any(|l| l.contains(start)) {
                *at = Some(Instant::now());
            }
            at.is_some_and(|t| t.elapsed() >= Duration::from_millis(ms))
        }
    }
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The RLIMIT_NOFILE under which exactly `free` more descriptors can be opened. The kernel
/// hands out the lowest free numbers and refuses those at or above the limit, so the limit is
/// the number of the free slot after `free` of them; counting the open ones would miss the
/// gaps a test harness or the environment leaves in the table.
fn limit_leaving_free(free: usize) -> u64 {
    // SAFETY: F_GETFD only asks whether a descriptor is open.
    let is_open = |fd: i32| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1;
    let slot = (0..).filter(|&fd| !is_open(fd)).nth(free).unwrap();
    slot as u64
}

/// Whether `pid` is still a child of this process (running or not yet reaped).
fn is_our_child(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let ppid: u32 = after.split(' ').nth(1).unwrap().parse().unwrap();
    ppid == std::process::id()
}

fn set_limit(resource: libc::__rlimit_resource_t, soft: u64) -> libc::rlimit {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers; this test runs alone in its binary.
    unsafe {
        libc::getrlimit(resource, &mut old);
        let new = libc::rlimit {
            rlim_cur: soft,
            rlim_max: old.rlim_max,
        };
        assert_eq!(libc::setrlimit(resource, &new), 0);
    }
    old
}

fn restore_limit(resource: libc::__rlimit_resource_t, old: libc::rlimit) {
    // SAFETY: as in set_limit.
    unsafe { assert_eq!(libc::setrlimit(resource, &old), 0) };
}

/// What one row did.
struct Seen {
    error: Option<String>,
    cancel_sent: bool,
    compressor_left: bool,
    fds_leaked: isize,
    output: u64,
    lines: Vec<String>,
}

fn run(row: &Row) -> Seen {
    let dir = TempDir::new("matrix");
    let path = dir.path().to_path_buf();
    let record = path.join("requests.jsonl");
    let record_arg = record.display().to_string();
    let mut args = vec![
        "--gen-disk",
        "drive-scsi0=16M",
        "--rate",
        "16M",
        "--record",
        record_arg.as_str(),
    ];
    args.extend_from_slice(row.sim);
    let _sim = Sim::start_vmid_in(dir, VMID, &args);
    let conf = path.join("qemu-server.conf");
    std::fs::write(&conf, "name: matrix\n").unwrap();
    let output = path.join("vzdump-qemu-100.vma.out");
    let pid_file = path.join(PID_FILE);
    // Through the shell, which writes its pid first; not under a tight RLIMIT_NOFILE, where
    // the shell cannot save its stdout for the redirection (dash dups it above 10).
    let compressor = match row.nofile_headroom {
        None => format!("echo $$ > {}; exec {}", pid_file.display(), row.compressor),
        Some(_) => row.compressor.to_string(),
    };
    let job: VmaJob = vzdump_qemu::loose::from_json(json!({
        "task": {
            "disks": [{"type": "file", "qmdevice": "drive-scsi0"}],
            "config-file": conf.display().to_string(),
            "vm-was-running": 1,
        },
        "output-file": output.display().to_string(),
        "compressor": compressor,
    }))
    .unwrap();
    let mut options = Options {
        style: Style::Seed,
        ..Options::default()
    };
    (row.options)(&mut options);
    let stop = row
        .signals
        .filter(|_| row.stop_at_signal)
        .map(|_| Arc::new(AtomicBool::new(false)));
    let caller = Caller {
        lines: Arc::new(Mutex::new(Vec::new())),
        stop: stop.clone(),
    };

    let fds_before = fd_count();
    let killer = row.kill_compressor_ms.map(|ms| {
        let pid_file = pid_file.clone();
        std::thread::spawn(move || {
            for _ in 0..500 {
                if let Ok(pid) = std::fs::read_to_string(&pid_file) {
                    if let Ok(pid) = pid.trim().parse::<i32>() {
                        std::thread::sleep(Duration::from_millis(ms));
                        // Only our own child: the library spawned it from this process.
                        if is_our_child(pid) {
                            // SAFETY: a pid this process created and has not reaped.
                            unsafe { libc::kill(pid, libc::SIGKILL) };
                        }
                        return;
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    });
    let done = Arc::new(AtomicBool::new(false));
    let signals = row.signals.map(|from| {
        let ready = phase_reached(from, &record, &caller.lines);
        signals_when(
            move || {
                let go = ready();
                if let (true, Some(stop)) = (go, &stop) {
                    stop.store(true, Ordering::SeqCst);
                }
                go
            },
            &done,
        )
    });
    let fsize = row.fsize.map(|b| set_limit(libc::RLIMIT_FSIZE, b));
    let nofile = row
        .nofile_headroom
        .map(|h| set_limit(libc::RLIMIT_NOFILE, limit_leaving_free(h)));
    let outcome = job::run_vma(&Peer::vmid_in(VMID, &path), &options, &job, &caller);
    if let Some(old) = nofile {
        restore_limit(libc::RLIMIT_NOFILE, old);
    }
    if let Some(old) = fsize {
        restore_limit(libc::RLIMIT_FSIZE, old);
    }
    drop(signals);
    if let Some(k) = killer {
        k.join().unwrap();
    }
    let compressor_pid = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok());
    let seen = Seen {
        error: outcome.err().map(|e| e.to_string()),
        cancel_sent: testkit::recorded_requests(&record)
            .iter()
            .any(|r| r["execute"] == "backup-cancel"),
        compressor_left: compressor_pid.is_some_and(is_our_child),
        fds_leaked: fd_count() as isize - fds_before as isize,
        output: std::fs::metadata(&output).map_or(0, |m| m.len()),
        lines: std::mem::take(&mut *caller.lines.lock().unwrap()),
    };
    seen
}

#[test]
fn fault_matrix() {
    let mut failures = Vec::new();
    for row in rows() {
        let seen = run(&row);
        eprintln!(
            "| {} | {} | cancel {} | compressor left {} | fds {} | output {} B |",
            row.name,
            seen.error.as_deref().unwrap_or("ok"),
            seen.cancel_sent,
            seen.compressor_left,
            seen.fds_leaked,
            seen.output
        );
        let mut fail = |what: String| failures.push(format!("{}: {what}", row.name));
        match (&row.error, &seen.error) {
            (None, None) => {}
            (Some(want), Some(got)) if got == want => {}
            (want, got) => fail(format!(
                "error {got:?}, want {want:?}; lines {:?}",
                seen.lines
            )),
        }
        let tail = seen.lines.len().saturating_sub(row.last_lines.len());
        if seen.lines[tail..] != *row.last_lines {
            fail(format!(
                "last lines {:?}, want {:?}",
                seen.lines, row.last_lines
            ));
        }
        if seen.cancel_sent != row.cancel {
            fail(format!("backup-cancel sent: {}", seen.cancel_sent));
        }
        if seen.compressor_left {
            fail("the compressor was not reaped".into());
        }
        if seen.fds_leaked != 0 {
            fail(format!("{} descriptors left open", seen.fds_leaked));
        }
    }
    half_a_reply(&mut failures);
    assert!(failures.is_empty(), "{failures:#?}");
}

/// QEMU stops in the middle of a reply (a scripted monitor: the simulator always finishes
/// its messages): the query times out, and nothing is left open.
fn half_a_reply(failures: &mut Vec<String>) {
    let fds_before = fd_count();
    let peer = FakePeer::on_first_command(|mut s, req| {
        let reply = json!({"return": {"status": "active"}, "id": req["id"]}).to_string();
        s.write_all(&reply.as_bytes()[..reply.len() / 2]).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
    });
    let options = Options {
        command_timeout: Some(Duration::from_millis(500)),
        ..Options::default()
    };
    let socket = peer.socket.clone();
    let err = backup::query_raw(&Peer::path(&socket), &options).unwrap_err();
    peer.join();
    // proxmox/qemu-server src/PVE/QMPClient.pm `mux_timeout`: "got timeout".
    let want = format!(
        "qmp socket '{}' command 'query-backup' failed - got timeout",
        socket.display()
    );
    eprintln!(
        "| QEMU hangs mid-reply | {err} | fds {} |",
        fd_count() as isize - fds_before as isize
    );
    if err.to_string() != want {
        failures.push(format!("mid-reply: {err}"));
    }
    if fd_count() != fds_before {
        failures.push("mid-reply: descriptors left open".into());
    }
}
