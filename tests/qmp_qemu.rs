//! The QMP client against real QEMU 10 (`-machine none -S`, a direct child).

mod common;

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use testkit::{with_signal_after, Qemu};
use vzdump_qemu::error::{Cause, Stage};
use vzdump_qemu::qmp::{self, ErrorClass, Options, Peer, Qmp};
use vzdump_qemu::Error;

use common::assert_error_reply;

fn connect(q: &Qemu) -> Qmp {
    Qmp::connect(&Peer::path(&q.socket), &Options::default()).unwrap()
}

#[test]
fn greeting_negotiation_and_version() {
    let q = Qemu::start();
    let mut c = connect(&q);
    let g = c.greeting().clone();
    assert_eq!(g.version["qemu"]["major"], 10);
    assert!(g.capabilities.contains(&"oob".to_string()));
    let v = c.execute("query-version", None, None).unwrap();
    assert_eq!(v, g.version, "query-version equals the greeting's version");
}

#[test]
fn status_transitions_and_events_kept_in_queue() {
    let q = Qemu::start();
    let mut c = connect(&q);
    let s = c.execute("query-status", None, None).unwrap();
    assert_eq!(s["status"], "prelaunch");
    assert_eq!(s["running"], false);
    assert_eq!(c.execute("cont", None, None).unwrap(), json!({}));
    let s = c.execute("query-status", None, None).unwrap();
    assert_eq!(s["status"], "running");
    c.execute("stop", None, None).unwrap();
    let s = c.execute("query-status", None, None).unwrap();
    assert_eq!(s["status"], "paused");
    let names: Vec<String> = c.take_events().into_iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        ["RESUME", "STOP"],
        "events interleaved with replies are queued"
    );
    assert!(c.take_events().is_empty());
}

#[test]
fn unknown_command_keeps_class_and_desc() {
    let q = Qemu::start();
    let mut c = connect(&q);
    let err = c.execute("backup", Some(json!({"backup-file": "/dev/null"})), None);
    assert_error_reply(
        &err.unwrap_err(),
        ("qmp", &q.socket),
        "backup",
        ErrorClass::CommandNotFound,
        "The command backup has not been found",
    );
    // A command error leaves the connection usable.
    assert!(c.execute("query-status", None, None).is_ok());
}

#[test]
fn getfd_closefd_and_fdsets() {
    let q = Qemu::start();
    let mut c = connect(&q);
    let (r, w) = nix::unistd::pipe().unwrap();
    let args = json!({"fdname": "bkpipe"});
    assert_eq!(
        c.execute_with_fd("getfd", Some(args), w.as_fd(), None)
            .unwrap(),
        json!({})
    );
    assert_eq!(
        c.execute("closefd", Some(json!({"fdname": "bkpipe"})), None)
            .unwrap(),
        json!({})
    );
    let err = c
        .execute("closefd", Some(json!({"fdname": "bkpipe"})), None)
        .unwrap_err();
    assert_eq!(err.class(), Some(&ErrorClass::GenericError));
    assert_eq!(err.desc(), "File descriptor named 'bkpipe' not found");

    // getfd without an fd: QEMU says so.
    let err = c
        .execute("getfd", Some(json!({"fdname": "x"})), None)
        .unwrap_err();
    assert_eq!(err.desc(), "No file descriptor supplied via SCM_RIGHTS");

    let added = c
        .execute_with_fd(
            "add-fd",
            Some(json!({"fdset-id": 7, "opaque": "t"})),
            r.as_fd(),
            None,
        )
        .unwrap();
    assert_eq!(added["fdset-id"], 7);
    let sets = c.execute("query-fdsets", None, None).unwrap();
    assert!(sets.as_array().unwrap().iter().any(|s| s["fdset-id"] == 7));
    c.execute("remove-fd", Some(json!({"fdset-id": 7})), None)
        .unwrap();
    let sets = c.execute("query-fdsets", None, None).unwrap();
    assert!(!sets.as_array().unwrap().iter().any(|s| s["fdset-id"] == 7));
}

#[test]
fn qemu_killed_during_command_gives_disconnected_promptly() {
    let q = Qemu::start();
    let mut c = connect(&q);
    q.signal(libc::SIGSTOP);
    let pid = q.pid();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: kill(2) of the test's own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    let err = c
        .execute("query-status", None, Some(Duration::from_secs(60)))
        .unwrap_err();
    killer.join().unwrap();
    let failure = err.command_error().expect("a command failure");
    assert!(matches!(failure.cause, Cause::Closed { .. }), "{failure:?}");
    assert_eq!(failure.stage, Stage::Command);
    // proxmox/qemu-server src/PVE/QMPClient.pm `mux_close`: "client closed connection".
    assert_eq!(
        err.to_string(),
        format!(
            "qmp socket '{}' command 'query-status' failed - client closed connection",
            q.socket.display()
        )
    );
    // Sticky: the same cause again, without touching the socket.
    let again = c.execute("query-version", None, None).unwrap_err();
    assert_eq!(again.command_error().unwrap().cause, failure.cause);
    assert!(again
        .to_string()
        .ends_with("command 'query-version' failed - client closed connection"));
}

#[test]
fn signal_during_wait_interrupts_and_late_reply_is_dropped() {
    let q = Qemu::start();
    let mut c = connect(&q);
    q.signal(libc::SIGSTOP);
    let err = with_signal_after(Duration::from_millis(200), || {
        c.execute("query-status", None, Some(Duration::from_secs(30)))
    })
    .unwrap_err();
    assert!(err.is_interrupted(), "{err}");
    assert!(err
        .to_string()
        .ends_with("command 'query-status' interrupted by signal"));
    q.signal(libc::SIGCONT);
    // The reply to the interrupted query-status arrives first and is dropped by id.
    let v = c.execute("query-version", None, None).unwrap();
    assert_eq!(v["qemu"]["major"], 10);
}

#[test]
fn command_timeout_closes_connection_and_says_outcome_unknown() {
    let q = Qemu::start();
    let mut c = connect(&q);
    q.signal(libc::SIGSTOP);
    let err = c
        .execute("query-status", None, Some(Duration::from_millis(200)))
        .unwrap_err();
    q.signal(libc::SIGCONT);
    assert!(err.is_timeout());
    // proxmox/qemu-server src/PVE/QMPClient.pm `mux_timeout`: "got timeout"; the time
    // that passed and the unknown outcome are in the typed error only.
    assert!(
        err.to_string()
            .ends_with("command 'query-status' failed - got timeout"),
        "{err}"
    );
    let failure = err.command_error().unwrap();
    assert_eq!(
        failure.cause,
        Cause::Timeout {
            after: Duration::from_millis(200)
        }
    );
    assert_eq!(failure.stage, Stage::Command);
    let again = c.execute("query-status", None, None).unwrap_err();
    assert!(again.is_timeout(), "sticky: {again}");
}

#[test]
fn second_client_is_served_while_library_runs_one_shot_operations() {
    let q = Qemu::start();
    let peer = Peer::path(&q.socket);
    let stop = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (peer, stop) = (peer.clone(), stop.clone());
        std::thread::spawn(move || {
            // A status daemon: every 100 ms, with a tight 1 s budget for the whole call.
            let opts = Options {
                connect_timeout: Duration::from_secs(1),
                handshake_timeout: Duration::from_secs(1),
                ..Options::default()
            };
            let mut ok = 0;
            while !stop.load(Ordering::Relaxed) {
                let r = qmp::command(
                    &peer,
                    "query-status",
                    None,
                    Some(Duration::from_secs(1)),
                    &opts,
                );
                if let Err(e) = r {
                    panic!("status client failed after {ok} queries: {e}");
                }
                ok += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            ok
        })
    };
    let start = Instant::now();
    let mut ops = 0;
    let (_r, w) = nix::unistd::pipe().unwrap();
    while start.elapsed() < Duration::from_secs(3) {
        qmp::command(&peer, "query-status", None, None, &Options::default()).unwrap();
        qmp::command(&peer, "query-version", None, None, &Options::default()).unwrap();
        // getfd + closefd: two commands, one connection, closed at once.
        let mut c = Qmp::connect(&peer, &Options::default()).unwrap();
        c.execute_with_fd("getfd", Some(json!({"fdname": "b"})), w.as_fd(), None)
            .unwrap();
        c.execute("closefd", Some(json!({"fdname": "b"})), None)
            .unwrap();
        drop(c);
        ops += 4;
    }
    stop.store(true, Ordering::Relaxed);
    let served = monitor.join().expect("the second client never timed out");
    assert!(served >= 10, "second client served {served} times");
    assert!(ops >= 40, "library ran {ops} operations");
}

#[test]
fn bad_arguments_are_rejected_before_sending() {
    let q = Qemu::start();
    let mut c = connect(&q);
    let err = c
        .execute("query-status", Some(json!([1, 2])), None)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert!(c.execute("query-status", None, None).is_ok());
}
