//! The whole backup job (`vzdump_qemu::job`) against `pve-qmp-sim` as VM 100 (its pid file
//! passes qemu-server's running check) and real qemu-ga as its agent: every branch of
//! qemu-server's `archive_vma` / `archive_pbs` flow, in the seed's order and today's, with
//! the exact lines in order and the commands QEMU and the agent received.
//!
//! The texts pinned here are qemu-server's: proxmox/qemu-server
//! `src/PVE/VZDump/QemuServer.pm` (`archive_vma`, `archive_pbs`, `qga_fs_freeze`,
//! `qga_fs_thaw`, `enforce_vm_running_for_backup`, `resume_vm_after_job_start`,
//! `restore_vm_power_state`, `mon_backup_cancel`), and the 2020 seed's versions of them.

mod common;

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use testkit::{Agent, Sim, TempDir};
use vzdump_qemu::job::{self, Finished, Host, PbsJob, VmaJob};
use vzdump_qemu::log::Level;
use vzdump_qemu::progress::{Clock, SystemClock};
use vzdump_qemu::qmp::{Options, Peer};
use vzdump_qemu::{Error, Style};

const VMID: u32 = 100;

/// The caller: records the lines (as vzdump prints them), starts the simulator paused as
/// the VM when asked, stops it, and says stop once a line with `cancel_on` was logged.
struct TestHost {
    lines: RefCell<Vec<String>>,
    /// The run directory of a VM that is not running yet, for `start_vm_paused`.
    stopped_dir: RefCell<Option<TempDir>>,
    sim_args: Vec<String>,
    started: RefCell<Option<Sim>>,
    stops: Cell<usize>,
    fail_start: Option<&'static str>,
    cancel_on: Option<&'static str>,
    cancel: Cell<bool>,
    /// Set once the job logged its signal error: [`repeated_signals`] stops then, so the
    /// error path runs undisturbed.
    signals_seen: Arc<AtomicBool>,
}

impl TestHost {
    fn new() -> Self {
        TestHost {
            lines: RefCell::new(Vec::new()),
            stopped_dir: RefCell::new(None),
            sim_args: Vec::new(),
            started: RefCell::new(None),
            stops: Cell::new(0),
            fail_start: None,
            cancel_on: None,
            cancel: Cell::new(false),
            signals_seen: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The lines without the status loop's progress lines and summaries.
    fn flow(&self) -> Vec<String> {
        self.lines
            .borrow()
            .iter()
            .filter(|l| !is_progress(l))
            .cloned()
            .collect()
    }
}

/// A status line or summary of either style (tested in tests/backup_sim.rs).
fn is_progress(line: &str) -> bool {
    let text = line.split_once(": ").map_or(line, |(_, t)| t);
    text.starts_with("status: ")
        || text.starts_with("transferred ")
        || text.starts_with("backup is sparse")
        || text
            .trim_start()
            .split_once("% (")
            .is_some_and(|(n, _)| n.parse::<u32>().is_ok())
}

impl Host for TestHost {
    fn log(&self, level: Level, text: &str) {
        let prefix = match level {
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Err => "ERROR",
        };
        if self.cancel_on.is_some_and(|c| text.contains(c)) {
            self.cancel.set(true);
        }
        if text == "interrupted by signal" {
            self.signals_seen.store(true, Ordering::SeqCst);
        }
        self.lines.borrow_mut().push(format!("{prefix}: {text}"));
    }

    fn start_vm_paused(&self) -> Result<(), String> {
        if let Some(error) = self.fail_start {
            return Err(error.to_string());
        }
        let dir = self.stopped_dir.borrow_mut().take().expect("a VM to start");
        let mut args: Vec<&str> = vec!["--state", "prelaunch"];
        args.extend(self.sim_args.iter().map(String::as_str));
        *self.started.borrow_mut() = Some(Sim::start_vmid_in(dir, VMID, &args));
        Ok(())
    }

    fn stop_vm(&self) -> Result<(), String> {
        self.stops.set(self.stops.get() + 1);
        drop(self.started.borrow_mut().take());
        Ok(())
    }

    fn cancelled(&self) -> bool {
        self.cancel.get()
    }
}

/// VM 100: the simulator with a 16 MiB disk at 32 MiB/s and a request record, running or
/// (`running: false`) only its run directory, for the host to start.
struct Vm {
    dir: PathBuf,
    record: PathBuf,
    /// Kept for the test's length: dropping kills and reaps them.
    _sim: Option<Sim>,
    _agent: Option<Agent>,
}

fn sim_args(record: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["--gen-disk", "drive-scsi0=16M", "--rate", "32M", "--record"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(record.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn vm(running: bool, agent: bool, extra: &[&str], host: &mut TestHost) -> Vm {
    let dir = TempDir::new("job");
    let path = dir.path().to_path_buf();
    let record = path.join("requests.jsonl");
    host.sim_args = sim_args(&record, extra);
    let sim = if running {
        let args: Vec<&str> = host.sim_args.iter().map(String::as_str).collect();
        Some(Sim::start_vmid_in(dir, VMID, &args))
    } else {
        *host.stopped_dir.borrow_mut() = Some(dir);
        None
    };
    let agent = agent.then(|| Agent::start_in(&path, VMID));
    Vm {
        dir: path,
        record,
        _sim: sim,
        _agent: agent,
    }
}

impl Vm {
    fn peer(&self) -> Peer {
        Peer::vmid_in(VMID, &self.dir)
    }

    /// The commands the simulator received, in order, without the handshake.
    fn commands(&self) -> Vec<String> {
        testkit::recorded_requests(&self.record)
            .iter()
            .map(|r| r["execute"].as_str().unwrap().to_string())
            .filter(|c| c != "qmp_capabilities" && c != "query-backup")
            .collect()
    }

    /// The `backup` command's arguments.
    fn backup_args(&self) -> Value {
        let all = testkit::recorded_requests(&self.record);
        let backup = all
            .iter()
            .find(|r| r["execute"] == "backup")
            .expect("a backup command");
        backup["arguments"].clone()
    }
}

fn options(style: Style) -> Options {
    Options {
        style,
        ..Options::default()
    }
}

fn task(vm: &Vm, extra: Value) -> Value {
    let conf = vm.dir.join("qemu-server.conf");
    std::fs::write(&conf, "name: test\n").unwrap();
    let mut task = json!({
        "disks": [{"type": "file", "qmdevice": "drive-scsi0"}],
        "config-file": conf.display().to_string(),
        "firewall-file": vm.dir.join("qemu-server.fw").display().to_string(),
    });
    task.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    task
}

fn vma_job(vm: &Vm, task_extra: Value, compressor: Option<&str>) -> (VmaJob, PathBuf) {
    let archive = vm.dir.join("vzdump-qemu-100.vma.zst");
    let job = json!({
        "task": task(vm, task_extra),
        "output-file": archive.display().to_string(),
        "compressor": compressor,
    });
    (vzdump_qemu::loose::from_json(job).unwrap(), archive)
}

fn run_vma(style: Style, vm: &Vm, job: &VmaJob, host: &TestHost) -> Result<Finished, Error> {
    job::run_vma(&vm.peer(), &options(style), job, host)
}

/// The uuid of the only `started backup task` line.
fn started_uuid(host: &TestHost) -> String {
    let lines = host.lines.borrow();
    let line = lines
        .iter()
        .find(|l| l.starts_with("INFO: started backup task '"))
        .expect("a started line");
    line.trim_start_matches("INFO: started backup task '")
        .trim_end_matches('\'')
        .to_string()
}

#[test]
fn running_vm_without_agent_in_both_styles() {
    for style in [Style::Seed, Style::Current] {
        let mut host = TestHost::new();
        let vm = vm(true, false, &[], &mut host);
        let (job, archive) = vma_job(&vm, json!({"agent": 1}), Some("zstd -q"));
        let done = run_vma(style, &vm, &job, &host).unwrap_or_else(|e| panic!("{style:?}: {e}"));
        let uuid = started_uuid(&host);
        assert_eq!(done.uuid, uuid);
        assert_eq!(done.progress.progress.transferred, 16 << 20, "{style:?}");
        // The agent is configured but has no socket: the skip line, no freeze.
        assert_eq!(
            host.flow(),
            [
                "INFO: skipping guest-agent 'fs-freeze', agent configured but not running?"
                    .to_string(),
                format!("INFO: started backup task '{uuid}'"),
                "INFO: resuming VM again".to_string(),
            ],
            "{style:?}"
        );
        let mut want = vec!["getfd", "backup", "cont"];
        if style == Style::Current {
            want.insert(0, "query-proxmox-support");
        }
        assert_eq!(vm.commands(), want, "{style:?}");
        let args = vm.backup_args();
        assert_eq!(args["devlist"], "drive-scsi0");
        assert_eq!(args["backup-file"], "/dev/fdname/backup");
        assert!(
            args.get("firewall-file").is_none(),
            "no firewall file exists: {args}"
        );
        // The archive is a zstd stream of a VMA with the job's uuid.
        let out = std::process::Command::new("zstd")
            .args(["-dcq"])
            .arg(&archive)
            .output()
            .unwrap();
        assert!(out.status.success());
        let info = vma::verify(&out.stdout[..]).unwrap();
        assert_eq!(info.header.uuid_string(), uuid, "{style:?}");
    }
}

#[test]
fn a_thaw_always_follows_a_freeze_even_when_the_agent_refuses_both() {
    for style in [Style::Seed, Style::Current] {
        let mut host = TestHost::new();
        let vm = vm(true, true, &[], &mut host);
        let (job, _) = vma_job(&vm, json!({"agent": true}), None);
        run_vma(style, &vm, &job, &host).unwrap_or_else(|e| panic!("{style:?}: {e}"));
        let flow = host.flow();
        // qemu-ga refuses the freeze commands on the host (testkit's BLOCKED list): each
        // failure is logged at error level, and the backup goes on.
        assert_eq!(
            flow[0], "INFO: issuing guest-agent 'fs-freeze' command",
            "{style:?}"
        );
        let refused = |line: &str, cmd: &str| {
            line.starts_with("ERROR: ") && line.contains(cmd) && line.contains("disabled")
        };
        assert!(
            refused(&flow[1], "guest-fsfreeze-freeze"),
            "{style:?}: {flow:?}"
        );
        assert_eq!(
            flow[2], "INFO: issuing guest-agent 'fs-thaw' command",
            "{style:?}"
        );
        assert!(
            refused(&flow[3], "guest-fsfreeze-thaw"),
            "{style:?}: {flow:?}"
        );
        assert!(
            flow[4].starts_with("INFO: started backup task '"),
            "{style:?}: {flow:?}"
        );
        assert_eq!(flow[5], "INFO: resuming VM again");
        assert_eq!(flow.len(), 6, "{style:?}: {flow:?}");
    }
}

#[test]
fn a_vm_that_was_not_running_is_started_paused_and_stopped_again() {
    for style in [Style::Seed, Style::Current] {
        let mut host = TestHost::new();
        let vm = vm(false, false, &[], &mut host);
        let (job, _) = vma_job(&vm, json!({"agent": true, "vm-was-running": false}), None);
        run_vma(style, &vm, &job, &host).unwrap_or_else(|e| panic!("{style:?}: {e}"));
        let uuid = started_uuid(&host);
        // No freeze (the VM was not running), no resume, and QEMU still in prelaunch.
        assert_eq!(
            host.flow(),
            [
                "INFO: starting kvm to execute backup task".to_string(),
                format!("INFO: started backup task '{uuid}'"),
                "INFO: stopping kvm after backup task".to_string(),
            ],
            "{style:?}"
        );
        assert_eq!(host.stops.get(), 1, "{style:?}");
        assert!(!vm.commands().contains(&"cont".to_string()));
    }
}

#[test]
fn a_vm_start_that_fails_ends_the_job_seed_as_is_today_logged_and_cancelled() {
    let expected = |style: Style| -> Vec<&'static str> {
        match style {
            Style::Seed => vec!["INFO: starting kvm to execute backup task"],
            // Today the start is inside the eval: logged, cancelled (on a VM without
            // QEMU: the cancel fails), and the power state is restored (query-status
            // fails: a warning).
            Style::Current => vec![
                "INFO: starting kvm to execute backup task",
                "ERROR: start failed: no such VM",
                "INFO: aborting backup job",
                "ERROR: VM 100 not running",
                "WARN: VM 100 not running",
            ],
        }
    };
    for style in [Style::Seed, Style::Current] {
        let mut host = TestHost::new();
        host.fail_start = Some("start failed: no such VM");
        let vm = vm(false, false, &[], &mut host);
        let (job, _) = vma_job(&vm, json!({"vm-was-running": false}), None);
        let error = run_vma(style, &vm, &job, &host).unwrap_err();
        assert_eq!(error.to_string(), "start failed: no such VM");
        assert_eq!(host.flow(), expected(style), "{style:?}");
    }
}

#[test]
fn a_failing_job_is_cancelled_and_its_compressor_reaped() {
    for style in [Style::Seed, Style::Current] {
        let mut host = TestHost::new();
        let vm = vm(true, false, &["--fault-error-at", "50"], &mut host);
        let compressor = named_zstd(&vm, "zstd-failing");
        let (job, _) = vma_job(&vm, json!({}), Some(&compressor));
        let error = run_vma(style, &vm, &job, &host).unwrap_err();
        // The job's errmsg as pve-qemu reports it, the seed's die text of the loop.
        assert_eq!(
            error.to_string(),
            "job failed with err -5 - Input/output error"
        );
        let uuid = started_uuid(&host);
        let mut want = vec![
            format!("INFO: started backup task '{uuid}'"),
            "INFO: resuming VM again".to_string(),
            "ERROR: job failed with err -5 - Input/output error".to_string(),
            "INFO: aborting backup job".to_string(),
        ];
        let mut commands = vec!["getfd", "backup", "cont", "backup-cancel"];
        if style == Style::Current {
            // Today's archive_vma resumes again after the cancel.
            want.push("INFO: resuming VM again".into());
            commands.insert(0, "query-proxmox-support");
            commands.push("cont");
        }
        assert_eq!(host.flow(), want, "{style:?}");
        assert_eq!(vm.commands(), commands, "{style:?}");
        assert_eq!(
            children_named("zstd-failing"),
            0,
            "the compressor was reaped"
        );
    }
}

#[test]
fn a_guest_influenced_errmsg_makes_one_line_of_at_most_64_kib() {
    // An errmsg with a newline, a fake task-log line, an escape sequence and a trailing
    // newline: one error line, the control characters written out.
    let mut host = TestHost::new();
    let errmsg = "write failed\nINFO: backup finished\u{1b}[2J\n";
    let arg = format!("50:{errmsg}");
    let injected = vm(true, false, &["--fault-error-at", &arg], &mut host);
    let (job, _) = vma_job(&injected, json!({}), None);
    let error = run_vma(Style::Seed, &injected, &job, &host).unwrap_err();
    let want = "write failed\\nINFO: backup finished\\x1b[2J";
    assert_eq!(error.to_string(), want);
    assert!(
        host.flow().contains(&format!("ERROR: {want}")),
        "{:?}",
        host.flow()
    );
    for line in host.lines.borrow().iter() {
        assert!(!line.contains(['\n', '\u{1b}']), "{line:?}");
    }

    // 100 KiB of errmsg: cut to 64 KiB.
    let mut host = TestHost::new();
    let arg = format!("50:{}", "e".repeat(100 * 1024));
    let long = vm(true, false, &["--fault-error-at", &arg], &mut host);
    let (job, _) = vma_job(&long, json!({}), None);
    let error = run_vma(Style::Seed, &long, &job, &host)
        .unwrap_err()
        .to_string();
    assert_eq!(error.len(), vzdump_qemu::log::MAX_PEER_TEXT + 3);
    assert!(error.ends_with("eee..."));
}

#[test]
fn a_refused_start_is_cancelled_only_today() {
    for style in [Style::Seed, Style::Current] {
        let mut host = TestHost::new();
        let vm = vm(true, false, &[], &mut host);
        let mut task = task(&vm, json!({}));
        task["disks"] = json!([{"type": "file", "qmdevice": "drive-nope"}]);
        let job: VmaJob = vzdump_qemu::loose::from_json(json!({
            "task": task, "output-file": vm.dir.join("x.vma").display().to_string()
        }))
        .unwrap();
        let error = run_vma(style, &vm, &job, &host).unwrap_err();
        // QEMU's bare desc, as the seed's queue_execute dies with it.
        assert_eq!(error.to_string(), "Device 'drive-nope' not found");
        let mut want = vec!["ERROR: Device 'drive-nope' not found"];
        if style == Style::Current {
            // Today's archive_vma cancels whether or not a job started, then resumes.
            want.extend(["INFO: aborting backup job", "INFO: resuming VM again"]);
        }
        assert_eq!(host.flow(), want, "{style:?}");
    }
}

#[test]
fn a_cancel_during_the_loop_ends_the_job_as_a_signal_does() {
    for style in [Style::Seed, Style::Current] {
        let mut host = TestHost::new();
        host.cancel_on = Some("resuming VM again");
        let vm = vm(true, false, &[], &mut host);
        let compressor = named_zstd(&vm, "zstd-cancelled");
        let (job, _) = vma_job(&vm, json!({}), Some(&compressor));
        let error = run_vma(style, &vm, &job, &host).unwrap_err();
        assert!(matches!(error, Error::Signal), "{error:?}");
        let flow = host.flow();
        let at = flow
            .iter()
            .position(|l| l == "ERROR: interrupted by signal");
        let at = at.unwrap_or_else(|| panic!("{style:?}: {flow:?}"));
        assert_eq!(flow[at + 1], "INFO: aborting backup job", "{style:?}");
        assert!(vm.commands().contains(&"backup-cancel".to_string()));
        assert_eq!(
            children_named("zstd-cancelled"),
            0,
            "the compressor was reaped"
        );
    }
}

#[test]
fn a_signal_during_the_loop_ends_the_job() {
    let mut host = TestHost::new();
    let vm = vm(true, false, &["--rate", "8M"], &mut host);
    let (job, _) = vma_job(&vm, json!({}), None);
    let signals = testkit::repeated_signals(Duration::from_millis(700), &host.signals_seen);
    let error = run_vma(Style::Seed, &vm, &job, &host).unwrap_err();
    drop(signals);
    assert!(matches!(error, Error::Signal), "{error:?}");
    let flow = host.flow();
    assert_eq!(
        flow[flow.len() - 2..],
        ["ERROR: interrupted by signal", "INFO: aborting backup job"]
    );
}

/// A running VM and a PBS job whose start waits for its server: 3 s before QEMU answers
/// `backup`.
fn slow_pbs_start(host: &mut TestHost) -> (Vm, PbsJob) {
    let vm = vm(true, false, &["--pbs-connect-delay-ms", "3000"], host);
    let job: PbsJob = vzdump_qemu::loose::from_json(json!({
        "task": task(&vm, json!({})),
        "pbs": {"backup-file": "r@pbs:s", "backup-id": "100", "backup-time": 1, "password": "pw"},
    }))
    .unwrap();
    (vm, job)
}

#[test]
fn signals_that_go_on_during_the_abort_do_not_stop_the_cancel() {
    let mut host = TestHost::new();
    // The cancel waits behind the slow start.
    let (vm, job) = slow_pbs_start(&mut host);
    // Every 20 ms from 300 ms on until the job has returned, the abort included.
    let never = Arc::new(AtomicBool::new(false));
    let signals = testkit::repeated_signals(Duration::from_millis(300), &never);
    let error = job::run_pbs(&vm.peer(), &options(Style::Current), &job, &host).unwrap_err();
    drop(signals);
    assert!(matches!(error, Error::Signal), "{error:?}");
    // Today's archive_pbs cancels and resumes after a failed start; neither fails.
    assert_eq!(
        host.flow(),
        [
            "ERROR: interrupted by signal",
            "INFO: aborting backup job",
            "INFO: resuming VM again"
        ]
    );
    let commands = vm.commands();
    let cancelled = commands.iter().position(|c| c == "backup-cancel");
    assert!(cancelled.is_some(), "{commands:?}");
    assert_eq!(
        commands.last().map(String::as_str),
        Some("cont"),
        "{commands:?}"
    );
}

#[test]
fn a_signal_during_the_start_ends_the_job_and_the_job_qemu_started() {
    for style in [Style::Seed, Style::Current] {
        let mut host = TestHost::new();
        let (vm, job) = slow_pbs_start(&mut host);
        let signals = testkit::repeated_signals(Duration::from_millis(300), &host.signals_seen);
        let error = job::run_pbs(&vm.peer(), &options(style), &job, &host).unwrap_err();
        drop(signals);
        assert!(matches!(error, Error::Signal), "{style:?}: {error:?}");
        // The seed knows no uuid and logs nothing more; today's archive_pbs cancels
        // anyway and resumes the VM.
        let want: &[&str] = match style {
            Style::Seed => &["ERROR: interrupted by signal"],
            Style::Current => &[
                "ERROR: interrupted by signal",
                "INFO: aborting backup job",
                "INFO: resuming VM again",
            ],
        };
        assert_eq!(host.flow(), want, "{style:?}");
        // In both styles the start whose outcome the signal left unknown is settled: the
        // job QEMU started meanwhile is cancelled (the seed left it running).
        let commands = vm.commands();
        assert!(
            commands.contains(&"backup-cancel".to_string()),
            "{style:?}: {commands:?}"
        );
        let status = vzdump_qemu::backup::query_raw(&vm.peer(), &options(style)).unwrap();
        assert_ne!(status["status"], "active", "{style:?}: {status}");
    }
}

#[test]
fn stop_mode_names_the_downtime_once_and_does_not_freeze() {
    let mut host = TestHost::new();
    let vm = vm(true, true, &[], &mut host);
    let stopped = SystemClock.now_secs() - 7;
    let extra = json!({"mode": "stop", "agent": 1, "vm-was-running": 1, "vm-stop-time": stopped});
    let (job, _) = vma_job(&vm, extra, None);
    run_vma(Style::Seed, &vm, &job, &host).unwrap();
    let flow = host.flow();
    assert_eq!(flow.len(), 2, "{flow:?}");
    assert!(flow[1].starts_with("INFO: "), "{flow:?}");
    let delay = common::downtime_of(&flow[1]);
    assert!((7..60).contains(&delay), "{delay}");
}

#[test]
fn pbs_arguments_in_both_styles() {
    for (style, fingerprint) in [(Style::Seed, true), (Style::Current, false)] {
        let mut host = TestHost::new();
        let vm = vm(true, false, &[], &mut host);
        std::fs::write(vm.dir.join("qemu-server.fw"), "[OPTIONS]\n").unwrap();
        let mut pbs = json!({
            "backup-file": "root@pam@pbs.example:store", "backup-id": "100",
            "backup-time": 1_700_000_000, "password": "secret-pw",
        });
        if fingerprint {
            pbs["fingerprint"] = json!("aa:bb");
        }
        let job: PbsJob = vzdump_qemu::loose::from_json(json!({
            "task": task(&vm, json!({"bwlimit": 1000})), "pbs": pbs,
        }))
        .unwrap();
        let done = job::run_pbs(&vm.peer(), &options(style), &job, &host)
            .unwrap_or_else(|e| panic!("{style:?}: {e}"));
        assert_eq!(done.progress.progress.transferred, 16 << 20);
        let args = vm.backup_args();
        let conf = vm.dir.join("qemu-server.conf").display().to_string();
        let fw = vm.dir.join("qemu-server.fw").display().to_string();
        let mut want = json!({
            "format": "pbs", "backup-file": "root@pam@pbs.example:store", "backup-id": "100",
            "backup-time": 1_700_000_000, "password": "secret-pw", "devlist": "drive-scsi0",
            "config-file": conf, "firewall-file": fw,
        });
        if fingerprint {
            want["fingerprint"] = json!("aa:bb");
        }
        if style == Style::Current {
            // Today's archive_pbs: speed from bwlimit, encrypt always, the dirty bitmap
            // when QEMU supports it and the VM is no template.
            want["speed"] = json!(1_024_000);
            want["encrypt"] = json!(false);
            want["use-dirty-bitmap"] = json!(true);
        }
        assert_eq!(args, want, "{style:?}");
        assert!(
            !host.lines.borrow().iter().any(|l| l.contains("secret-pw")),
            "the password is never logged"
        );
    }
}

#[test]
fn today_pbs_needs_proxmox_support() {
    let mut host = TestHost::new();
    let vm = vm(true, false, &["--no-proxmox-support"], &mut host);
    let job: PbsJob = vzdump_qemu::loose::from_json(json!({
        "task": task(&vm, json!({})),
        "pbs": {"backup-file": "r@pbs:s", "backup-id": "100", "backup-time": 1},
    }))
    .unwrap();
    let error = job::run_pbs(&vm.peer(), &options(Style::Current), &job, &host).unwrap_err();
    // proxmox/qemu-server src/PVE/VZDump/QemuServer.pm, archive_pbs.
    let text = "PBS backups are not supported by the running QEMU version. Please make sure \
                you've installed the latest version and the VM has been restarted.";
    assert_eq!(error.to_string(), text);
    assert_eq!(
        host.flow(),
        [
            format!("ERROR: {text}"),
            "INFO: aborting backup job".into(),
            "INFO: resuming VM again".into()
        ]
    );
    assert!(!vm.commands().contains(&"backup".to_string()));
}

/// `zstd -q` under a name of its own (a link in the VM's directory), so that
/// [`children_named`] tells this test's compressor from the other tests'.
fn named_zstd(vm: &Vm, name: &str) -> String {
    let link = vm.dir.join(name);
    let zstd = ["/usr/bin/zstd", "/bin/zstd"]
        .iter()
        .find(|p| Path::new(p).exists());
    std::os::unix::fs::symlink(zstd.expect("zstd installed"), &link).unwrap();
    format!("{} -q", link.display())
}

/// How many children (alive or zombie) of this test process run as `name` (from /proc).
fn children_named(name: &str) -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid ...
            let Some((comm, rest)) = stat.split_once(") ") else {
                return false;
            };
            comm.ends_with(&format!("({name}")) && rest.split(' ').nth(1) == Some(me.as_str())
        })
        .count()
}
