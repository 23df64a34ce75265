//! The job's power-state steps (`vzdump_qemu::job::PowerState`) against real QEMU 10,
//! started paused (`-S`, prelaunch) and running, as VM 100 with its pid file: the running
//! check (live, stale and missing pid file), `cont` after the start, and the restore
//! decisions. The lines are qemu-server's (proxmox/qemu-server
//! `src/PVE/VZDump/QemuServer.pm`: `enforce_vm_running_for_backup`,
//! `resume_vm_after_job_start`, `restore_vm_power_state`).

mod common;

use std::cell::{Cell, RefCell};

use testkit::{Qemu, TempDir};
use vzdump_qemu::job::{Host, PowerState};
use vzdump_qemu::log::Level;
use vzdump_qemu::progress::{Clock, SystemClock};
use vzdump_qemu::qmp::{self, Options, Peer};
use vzdump_qemu::Style;

/// Records lines and the VM callbacks; starting fails unless `start_ok`.
#[derive(Default)]
struct Recorder {
    lines: RefCell<Vec<(Level, String)>>,
    starts: Cell<usize>,
    stops: Cell<usize>,
    start_ok: bool,
}

impl Host for Recorder {
    fn log(&self, level: Level, text: &str) {
        self.lines.borrow_mut().push((level, text.to_string()));
    }
    fn start_vm_paused(&self) -> Result<(), String> {
        self.starts.set(self.starts.get() + 1);
        match self.start_ok {
            true => Ok(()),
            false => Err("start refused".into()),
        }
    }
    fn stop_vm(&self) -> Result<(), String> {
        self.stops.set(self.stops.get() + 1);
        Ok(())
    }
    fn cancelled(&self) -> bool {
        false
    }
}

impl Recorder {
    fn texts(&self) -> Vec<String> {
        self.lines.borrow().iter().map(|(_, t)| t.clone()).collect()
    }
}

fn power(dir: &std::path::Path, was_running: bool, stop_time: Option<i64>) -> PowerState {
    let peer = Peer::vmid_in(100, dir);
    PowerState::new(&peer, &Options::default(), was_running, false, stop_time).unwrap()
}

fn status(qemu: &Qemu) -> String {
    let reply = qmp::command(
        &Peer::path(&qemu.socket),
        "query-status",
        None,
        None,
        &Options::default(),
    )
    .unwrap();
    reply["status"].as_str().unwrap().to_string()
}

#[test]
fn a_live_pid_file_counts_as_running_a_stale_or_missing_one_does_not() {
    let qemu = Qemu::start_vm(100, &["-S"]);
    let host = Recorder::default();
    let mut state = power(qemu.dir.path(), false, None);
    state.enforce_running(&host).unwrap();
    assert!(state.was_running(), "a live QEMU with its pid file runs");
    assert_eq!(host.starts.get(), 0);
    assert!(host.texts().is_empty());

    // Stale: the pid file names a process that is no QEMU (this test), then none at all.
    let dir = TempDir::new("stale");
    for pid in [std::process::id(), 999_999_999] {
        std::fs::write(dir.join("100.pid"), format!("{pid}\n")).unwrap();
        let host = Recorder::default();
        let mut state = power(dir.path(), false, None);
        let error = state.enforce_running(&host).unwrap_err();
        assert_eq!(
            error.to_string(),
            "start refused",
            "the start callback's error"
        );
        assert_eq!(
            host.texts(),
            ["starting kvm to execute backup task"],
            "pid {pid}"
        );
        assert_eq!(host.starts.get(), 1);
        assert!(!state.was_running());
    }
    // Missing: no pid file at all.
    let empty = TempDir::new("missing");
    let host = Recorder {
        start_ok: true,
        ..Recorder::default()
    };
    let mut state = power(empty.path(), false, None);
    state.enforce_running(&host).unwrap();
    assert_eq!(host.starts.get(), 1);
    assert!(
        !state.was_running(),
        "a VM started for the backup was not running"
    );
}

#[test]
fn resume_sends_cont_and_names_the_downtime_once() {
    let qemu = Qemu::start_vm(100, &["-S"]);
    assert_eq!(status(&qemu), "prelaunch");
    let host = Recorder::default();
    let stopped = SystemClock.now_secs() - 3;
    let mut state = power(qemu.dir.path(), true, Some(stopped));
    state.resume_after_start(&host).unwrap();
    assert_eq!(status(&qemu), "running", "cont was sent");
    state.resume_after_start(&host).unwrap();
    let texts = host.texts();
    let delay = common::downtime_of(&texts[0]);
    assert!((3..60).contains(&delay), "{delay}");
    assert_eq!(texts[1], "resuming VM again", "the downtime is named once");

    // A VM that was not running stays paused; today's style honours a paused VM too.
    let other = Qemu::start_vm(100, &["-S"]);
    let host = Recorder::default();
    power(other.dir.path(), false, None)
        .resume_after_start(&host)
        .unwrap();
    let peer = Peer::vmid_in(100, other.dir.path());
    let current = Options {
        style: Style::Current,
        ..Options::default()
    };
    let mut paused = PowerState::new(&peer, &current, true, true, None).unwrap();
    paused.resume_after_start(&host).unwrap();
    assert!(host.texts().is_empty());
    assert_eq!(status(&other), "prelaunch");
}

#[test]
fn restore_stops_a_vm_still_in_prelaunch_and_keeps_one_that_runs() {
    let paused = Qemu::start_vm(100, &["-S"]);
    let host = Recorder::default();
    power(paused.dir.path(), false, None).restore(&host);
    assert_eq!(host.texts(), ["stopping kvm after backup task"]);
    assert_eq!(host.stops.get(), 1);

    let running = Qemu::start_vm(100, &[]);
    let host = Recorder::default();
    power(running.dir.path(), false, None).restore(&host);
    assert_eq!(
        host.texts(),
        ["kvm status changed after backup ('running') - keep VM running"]
    );
    assert_eq!(host.stops.get(), 0);

    // A VM that was running before is always kept, without asking QEMU.
    let host = Recorder::default();
    power(running.dir.path(), true, None).restore(&host);
    assert!(host.texts().is_empty());

    // QEMU gone: a warning (qemu-server warns), not a failure.
    let gone = TempDir::new("gone");
    let host = Recorder::default();
    power(gone.path(), false, None).restore(&host);
    assert_eq!(
        *host.lines.borrow(),
        [(Level::Warn, "VM 100 not running".to_string())]
    );
}
