//! `Options::on_signal`: what a one-shot call does when a signal interrupts one of its
//! waits (reliability finding 17 in docs/reliability.md). The monitor is `pve-qmp-sim`
//! answering every command 800 ms late (`--fault-slow-ms`; the agent's case is in
//! tests/qga.rs), while SIGUSR1 (a no-op handler without SA_RESTART, as Perl's) hits the calling thread
//! every 20 ms.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use testkit::{repeated_signals, Sim};
use vzdump_qemu::backup;
use vzdump_qemu::qmp::{self, Options, Peer, Qmp};
use vzdump_qemu::wait::SignalCheck;

/// A check that counts its calls and says stop from call `stop_at` on (0: never).
fn counting(stop_at: usize) -> (SignalCheck, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let check = SignalCheck::new(move || {
        let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
        stop_at != 0 && n >= stop_at
    });
    (check, calls)
}

fn slow_monitor() -> Sim {
    Sim::start(&["--fault-slow-ms", "800"])
}

fn with(check: &SignalCheck) -> Options {
    Options {
        on_signal: Some(check.clone()),
        ..Options::default()
    }
}

/// Runs `call` under signals from 50 ms on.
fn under_signals<T>(call: impl FnOnce() -> T) -> T {
    let done = Arc::new(AtomicBool::new(false));
    let signals = repeated_signals(Duration::from_millis(50), &done);
    let result = call();
    drop(signals);
    result
}

/// `query-version` on the slow monitor under signals, with `options`.
fn query_version(sim: &Sim, options: &Options) -> vzdump_qemu::Result<serde_json::Value> {
    under_signals(|| {
        qmp::command(
            &Peer::path(&sim.socket),
            "query-version",
            None,
            None,
            options,
        )
    })
}

#[test]
fn a_check_that_lets_signals_pass_gets_the_reply() {
    let sim = slow_monitor();
    let (check, calls) = counting(0);
    let reply = query_version(&sim, &with(&check)).unwrap();
    assert!(reply["qemu"]["major"].is_number(), "{reply}");
    // The handshake's replies and the command's came late: many signals were asked about.
    assert!(calls.load(Ordering::SeqCst) >= 10, "{calls:?}");
}

#[test]
fn a_check_that_says_stop_ends_the_call_as_a_signal_does() {
    let sim = slow_monitor();
    let (check, calls) = counting(3);
    let err = query_version(&sim, &with(&check)).unwrap_err();
    assert!(err.is_interrupted(), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn without_a_check_every_signal_ends_the_call() {
    let sim = slow_monitor();
    let err = query_version(&sim, &Options::default()).unwrap_err();
    assert!(err.is_interrupted(), "{err}");
}

#[test]
fn an_open_connection_keeps_the_check_it_was_opened_with() {
    let sim = slow_monitor();
    let (check, calls) = counting(0);
    let mut qmp = Qmp::connect(&Peer::path(&sim.socket), &with(&check)).unwrap();
    let before = calls.load(Ordering::SeqCst);
    let reply = under_signals(|| qmp.execute("query-status", None, None)).unwrap();
    assert_eq!(reply["status"], "running", "{reply}");
    assert!(calls.load(Ordering::SeqCst) > before, "{calls:?}");
}

#[test]
fn a_backup_query_and_cancel_go_on_through_signals() {
    let sim = slow_monitor();
    let (check, calls) = counting(0);
    let peer = Peer::path(&sim.socket);
    let status = under_signals(|| backup::query_raw(&peer, &with(&check))).unwrap();
    assert!(status.is_object(), "{status}");
    under_signals(|| backup::cancel(&peer, &with(&check))).unwrap();
    assert!(calls.load(Ordering::SeqCst) >= 10, "{calls:?}");
}

#[test]
fn the_cancel_after_a_failure_runs_to_its_end_whatever_the_check_says() {
    let sim = slow_monitor();
    let (check, calls) = counting(1);
    let reply = under_signals(|| {
        qmp::command_to_the_end(
            &Peer::path(&sim.socket),
            "backup-cancel",
            None,
            None,
            &with(&check),
        )
    });
    assert!(reply.is_ok(), "{reply:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the caller's check is not asked"
    );
}
