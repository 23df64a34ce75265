//! A process that forks while another of its threads holds a monitor connection: the child
//! does not keep that connection open, so QEMU (which serves one client at a time) is free
//! again as soon as the thread closes it. Against real QEMU.

use std::sync::mpsc;
use std::time::Duration;

use testkit::Qemu;
use vzdump_qemu::qmp::{self, Options, Peer, Qmp};

#[test]
fn a_child_forked_while_another_thread_holds_a_connection_does_not_keep_it() {
    let q = Qemu::start();
    let peer = Peer::path(&q.socket);
    let (held_tx, held_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder_peer = peer.clone();
    let holder = std::thread::spawn(move || {
        let connection = Qmp::connect(&holder_peer, &Options::default()).unwrap();
        held_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        drop(connection);
    });
    held_rx.recv().unwrap();

    // SAFETY: the child only sleeps and exits (async-signal-safe calls).
    let child = unsafe { libc::fork() };
    if child == 0 {
        let three_seconds = libc::timespec {
            tv_sec: 3,
            tv_nsec: 0,
        };
        // SAFETY: nanosleep and _exit are async-signal-safe.
        unsafe {
            libc::nanosleep(&three_seconds, std::ptr::null_mut());
            libc::_exit(0);
        }
    }
    assert!(child > 0, "fork failed");
    release_tx.send(()).unwrap();
    holder.join().unwrap();

    // The monitor is free again while the child still lives: the greeting comes at once.
    let options = Options {
        handshake_timeout: Duration::from_secs(1),
        ..Options::default()
    };
    let status = qmp::command(&peer, "query-status", None, None, &options);
    let mut wait_status = 0;
    // SAFETY: our own child, reaped here (it exits by itself within 3 s).
    unsafe { libc::waitpid(child, &mut wait_status, 0) };
    let status = status.expect("QEMU served the next client");
    assert_eq!(status["status"], "prelaunch");
}
