//! The QMP client against scripted peers, for what real QEMU will not do.

mod common;

use std::io::{IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
use serde_json::json;
use testkit::{negotiate, reply, with_signal_after, FakePeer, GREETING};
use vzdump_qemu::error::{Cause, Stage};
use vzdump_qemu::qmp::framing::JsonSplitter;
use vzdump_qemu::qmp::{ErrorClass, Options, Peer, Qmp};
use vzdump_qemu::{Error, Style};

use common::cause_of;

fn quick() -> Options {
    Options {
        handshake_timeout: Duration::from_millis(300),
        ..Options::default()
    }
}

fn connect(peer: &FakePeer, opts: &Options) -> vzdump_qemu::Result<Qmp> {
    Qmp::connect(&Peer::path(&peer.socket), opts)
}

#[test]
fn garbage_instead_of_greeting() {
    let p = FakePeer::start(|mut s| {
        s.write_all(b"HELLO\xff\x00 not json\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(200));
    });
    let err = connect(&p, &quick()).unwrap_err();
    assert!(
        matches!(cause_of(&err), (Cause::Protocol { .. }, Stage::Handshake)),
        "{err}"
    );
    // Our own wording after qemu-server's prefix: qemu-server would print its JSON
    // parser's message here. A bare connection names `qmp_capabilities`, the first
    // command qemu-server's queue sends.
    assert!(
        err.to_string().ends_with(
            "command 'qmp_capabilities' failed - unexpected data outside a JSON object: 'HELLO\\xff\\x00 not json\\r\\n'"
        ),
        "{err}"
    );
    p.join();
}

#[test]
fn no_greeting_connection_closed() {
    let p = FakePeer::start(drop);
    let err = connect(&p, &quick()).unwrap_err();
    assert!(
        matches!(cause_of(&err), (Cause::Closed { .. }, Stage::Handshake)),
        "{err}"
    );
    // proxmox/qemu-server src/PVE/QMPClient.pm `mux_close`.
    assert!(
        err.to_string()
            .ends_with("command 'qmp_capabilities' failed - client closed connection"),
        "{err}"
    );
    p.join();
}

/// Connects to a peer running `script`, which falls silent during the handshake: the
/// connect times out there after `quick()`'s 300 ms.
fn assert_handshake_times_out(script: impl FnOnce(UnixStream) + Send + 'static) {
    let p = FakePeer::start(script);
    let err = connect(&p, &quick()).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let timeout = Cause::Timeout {
        after: Duration::from_millis(300),
    };
    assert_eq!(cause_of(&err), (timeout, Stage::Handshake));
    // proxmox/qemu-server src/PVE/QMPClient.pm `mux_timeout`.
    assert!(
        err.to_string()
            .ends_with("command 'qmp_capabilities' failed - got timeout"),
        "{err}"
    );
    p.join();
}

#[test]
fn silent_peer_times_out_on_greeting() {
    assert_handshake_times_out(|_s| std::thread::sleep(Duration::from_millis(600)));
}

#[test]
fn greeting_then_silence_times_out_on_negotiation() {
    assert_handshake_times_out(|mut s| {
        s.write_all(GREETING).unwrap();
        std::thread::sleep(Duration::from_millis(600));
    });
}

#[test]
fn greeting_not_understood() {
    let p = FakePeer::start(|mut s| {
        s.write_all(b"{\"QMP\": {\"capabilities\": []}}\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
    });
    let err = connect(&p, &quick()).unwrap_err();
    assert!(
        err.to_string()
            .contains("command 'qmp_capabilities' failed - greeting not understood"),
        "{err}"
    );
    assert_eq!(cause_of(&err).1, Stage::Handshake);
    p.join();
}

#[test]
fn events_are_not_taken_for_the_reply() {
    let p = FakePeer::on_first_command(|mut s, req| {
        assert_eq!(req["execute"], "query-status");
        let id = req["id"].as_str().unwrap();
        assert!(
            id.starts_with(&format!("{}:", std::process::id())),
            "id is <pid>:<n>"
        );
        s.write_all(
            b"{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 5, \"microseconds\": 6}}\r\n",
        )
        .unwrap();
        reply(&mut s, &req, json!({"status": "running"}));
    });
    let mut c = connect(&p, &quick()).unwrap();
    let v = c.execute("query-status", None, None).unwrap();
    assert_eq!(v["status"], "running");
    let events = c.take_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name, "STOP");
    assert_eq!(events[0].timestamp, (5, 6));
    p.join();
}

/// A peer that answers the first command with the bytes `reply` (`{ID}` in it becomes the
/// request's id), then closes after a moment.
fn answer_with(reply: impl Into<Vec<u8>>) -> FakePeer {
    let reply = reply.into();
    FakePeer::on_first_command(move |mut s, req| {
        let id = req["id"].to_string();
        let mut bytes = Vec::new();
        let mut rest = &reply[..];
        while let Some(at) = rest.windows(4).position(|w| w == b"{ID}") {
            bytes.extend_from_slice(&rest[..at]);
            bytes.extend_from_slice(id.as_bytes());
            rest = &rest[at + 4..];
        }
        bytes.extend_from_slice(rest);
        let _ = s.write_all(&bytes);
        std::thread::sleep(Duration::from_millis(50));
    })
}

/// The error of a first command `x` on `peer` with `opts`, and the connection it left.
fn first_error(peer: &FakePeer, opts: &Options) -> (Error, Qmp) {
    let mut c = connect(peer, opts).unwrap();
    let err = c.execute("x", None, None).unwrap_err();
    (err, c)
}

/// The command's error with the given style.
fn fails_with(peer: &FakePeer, style: Style) -> Error {
    let opts = Options { style, ..quick() };
    let mut c = connect(peer, &opts).unwrap();
    let err = c.execute("query-backup", None, None).unwrap_err();
    // The stream is out of step: the connection is dead, sticky.
    let again = c.execute("query-status", None, None).unwrap_err();
    assert_eq!(cause_of(&again).0, cause_of(&err).0, "{again}");
    err
}

#[test]
fn a_reply_to_another_id_fails_as_in_qemu_server() {
    for (reply, got) in [
        (r#"{"return": {}, "id": "other:1"}"#, "other:1"),
        (r#"{"return": {}, "id": 17}"#, "17"),
    ] {
        let p = answer_with(reply);
        let err = fails_with(&p, Style::Current);
        let (Cause::WrongId { got: g, expected }, Stage::Command) = cause_of(&err) else {
            panic!("{err:?}");
        };
        assert_eq!(g, got);
        // proxmox/qemu-server src/PVE/QMPClient.pm `mux_input`:
        // "got wrong command id '$cmdid' (expected $curcmd->{id})".
        assert!(
            err.to_string().ends_with(&format!(
                "command 'query-backup' failed - got wrong command id '{got}' (expected {expected})"
            )),
            "{err}"
        );
        p.join();
    }
}

#[test]
fn a_reply_without_id_fails_in_each_eras_words() {
    for reply in [
        r#"{"return": {}}"#,
        r#"{"return": {}, "id": ""}"#,
        r#"{"return": {}, "id": "0"}"#,
        r#"{"return": {}, "id": 0}"#,
        r#"{"return": {}, "id": null}"#,
    ] {
        for (style, text) in [
            // proxmox/qemu-server src/PVE/QMPClient.pm `mux_input` today ...
            (Style::Current, "received response without command id"),
            // ... and the seed's client of 2020 (same function).
            (Style::Seed, "received responsed without command id"),
        ] {
            let p = answer_with(reply);
            let err = fails_with(&p, style);
            assert_eq!(
                cause_of(&err),
                (Cause::MissingId, Stage::Command),
                "{reply}"
            );
            assert!(
                err.to_string()
                    .ends_with(&format!("command 'query-backup' failed - {text}")),
                "{reply}: {err}"
            );
            p.join();
        }
    }
}

#[test]
fn event_queue_is_bounded() {
    let p = FakePeer::on_first_command(|mut s, req| {
        for i in 0..300 {
            let ev = json!({"event": "E", "data": {"n": i}, "timestamp": {"seconds": 1, "microseconds": 2}});
            s.write_all(format!("{ev}\r\n").as_bytes()).unwrap();
        }
        reply(&mut s, &req, json!({}));
    });
    let opts = Options {
        event_capacity: 256,
        ..quick()
    };
    let mut c = connect(&p, &opts).unwrap();
    c.execute("x", None, None).unwrap();
    let events = c.take_events();
    assert_eq!(events.len(), 256);
    assert_eq!(events[0].data["n"], 44, "the oldest were dropped");
    assert_eq!(c.events_dropped(), 44);
    p.join();
}

#[test]
fn event_queue_is_bounded_in_bytes() {
    // Twelve events of about 100 kB before the reply, 350 kB allowed: the newest
    // three kept, nine dropped and counted.
    let pad = "p".repeat(100_000);
    let p = FakePeer::on_first_command(move |mut s, req| {
        for i in 0..12 {
            let ev = json!({"event": "BIG", "data": {"n": i, "pad": pad}});
            s.write_all(format!("{ev}\r\n").as_bytes()).unwrap();
        }
        reply(&mut s, &req, json!({}));
    });
    let opts = Options {
        event_bytes: 350_000,
        ..quick()
    };
    let mut c = connect(&p, &opts).unwrap();
    c.execute("x", None, None).unwrap();
    let events = c.take_events();
    let kept: Vec<_> = events
        .iter()
        .map(|e| e.data["n"].as_u64().unwrap())
        .collect();
    assert_eq!(kept, [9, 10, 11]);
    assert_eq!(c.events_dropped(), 9);
    p.join();
}

#[test]
fn oversized_message_is_a_clear_error() {
    let big = "x".repeat(100_000);
    let p = answer_with(format!("{{\"return\": \"{big}\", \"id\": {{ID}}}}\r\n"));
    let opts = Options {
        max_message_size: 64 * 1024,
        ..quick()
    };
    let (err, _) = first_error(&p, &opts);
    assert!(matches!(cause_of(&err).0, Cause::Protocol { .. }), "{err}");
    assert!(
        err.to_string()
            .ends_with("command 'x' failed - message exceeds the size limit of 65536 bytes"),
        "{err}"
    );
    p.join();
}

#[test]
fn half_a_message_then_close_is_disconnected_and_sticky() {
    let p = answer_with(&b"{\"return\": {\"sta"[..]);
    let (err, mut c) = first_error(&p, &quick());
    let (Cause::Closed { detail }, Stage::Command) = cause_of(&err) else {
        panic!("{err:?}");
    };
    assert_eq!(
        detail,
        "end of file in the middle of a message: '{\"return\": {\"sta'"
    );
    // proxmox/qemu-server src/PVE/QMPClient.pm `mux_close`.
    assert!(
        err.to_string()
            .ends_with("command 'x' failed - client closed connection"),
        "{err}"
    );
    let again = c.execute("y", None, None).unwrap_err();
    assert!(again
        .to_string()
        .ends_with("command 'y' failed - client closed connection"));
    assert_eq!(
        cause_of(&again).1,
        Stage::Connect,
        "nothing of 'y' was sent"
    );
    p.join();
}

#[test]
fn id_less_error_means_our_request_was_not_parsed() {
    let p = answer_with(
        &b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\r\n"[..],
    );
    let (err, mut c) = first_error(&p, &quick());
    // proxmox/qemu-server src/PVE/QMPClient.pm `mux_input` dies with an error's desc
    // before it looks at the id.
    assert!(
        err.to_string()
            .ends_with("command 'x' failed - JSON parse error"),
        "{err}"
    );
    assert_eq!(err.class(), Some(&ErrorClass::GenericError));
    let again = c.execute("y", None, None).unwrap_err();
    assert_eq!(
        again.desc(),
        "JSON parse error",
        "the connection is dead: {again}"
    );
    p.join();
}

#[test]
fn invalid_utf8_and_invalid_json_quote_an_excerpt() {
    let p = answer_with(&b"{\"return\": \"\xc3\x28\"}\r\n"[..]);
    let err = first_error(&p, &quick()).0.to_string();
    assert!(err.contains("command 'x' failed - invalid JSON ("), "{err}");
    assert!(err.ends_with("'{\"return\": \"\\xc3(\"}'"), "{err}");
    p.join();

    let p = answer_with(&b"{\"return\": nope}\r\n"[..]);
    let err = first_error(&p, &quick()).0.to_string();
    assert!(err.contains("invalid JSON (expected ident"), "{err}");
    p.join();
}

#[test]
fn reply_without_return_or_error() {
    let p = answer_with("{\"id\": {ID}}\r\n");
    let err = first_error(&p, &quick()).0.to_string();
    assert!(
        err.contains("command 'x' failed - reply to 'x' has neither 'return' nor 'error'"),
        "{err}"
    );
    p.join();
}

#[test]
fn signal_during_wait_returns_interrupted() {
    let p = FakePeer::on_first_command(|_s, _req| {
        std::thread::sleep(Duration::from_millis(1500));
    });
    let mut c = connect(&p, &quick()).unwrap();
    let err = with_signal_after(Duration::from_millis(100), || {
        c.execute("x", None, Some(Duration::from_secs(20)))
    })
    .unwrap_err();
    assert!(err.is_interrupted(), "{err}");
    p.join();
}

#[test]
fn fd_travels_in_the_same_sendmsg_as_the_command() {
    let p = FakePeer::start(|mut s| {
        let sp = negotiate(&mut s);
        assert!(sp.pending().iter().all(u8::is_ascii_whitespace));
        let mut buf = [0u8; 4096];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<UnixAddr>(s.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty())
            .unwrap();
        let fds: Vec<_> = msg
            .cmsgs()
            .unwrap()
            .flat_map(|c| match c {
                ControlMessageOwned::ScmRights(fds) => fds,
                _ => vec![],
            })
            .collect();
        let n = msg.bytes;
        assert_eq!(fds.len(), 1, "exactly one fd with the getfd bytes");
        let mut split = JsonSplitter::new(4096);
        split.push(&buf[..n]);
        let req: serde_json::Value =
            serde_json::from_slice(split.next_object().unwrap().unwrap()).unwrap();
        assert_eq!(req["execute"], "getfd");
        assert_eq!(req["arguments"]["fdname"], "backup");
        // The received fd is the pipe: write through it.
        nix::unistd::write(
            unsafe { std::os::fd::BorrowedFd::borrow_raw(fds[0]) },
            b"hi",
        )
        .unwrap();
        nix::unistd::close(fds[0]).unwrap();
        reply(&mut s, &req, json!({}));
    });
    let (r, w) = nix::unistd::pipe().unwrap();
    let mut c = connect(&p, &quick()).unwrap();
    c.execute_with_fd("getfd", Some(json!({"fdname": "backup"})), w.as_fd(), None)
        .unwrap();
    drop(w);
    let mut got = [0u8; 8];
    let n = nix::unistd::read(&r, &mut got).unwrap();
    assert_eq!(&got[..n], b"hi");
    p.join();
}

#[test]
fn connection_is_refused_after_fork() {
    let p = FakePeer::start(|mut s| {
        let _sp = negotiate(&mut s);
        std::thread::sleep(Duration::from_millis(300));
    });
    let mut c = connect(&p, &quick()).unwrap();
    // SAFETY: the child only calls async-signal-safe-enough code and _exit.
    match unsafe { libc::fork() } {
        0 => {
            let code = match c.execute("x", None, None) {
                Err(Error::InvalidArgument(m)) if m.contains("connect again after fork") => 0,
                _ => 1,
            };
            unsafe { libc::_exit(code) };
        }
        pid => {
            let mut status = 0;
            unsafe { libc::waitpid(pid, &mut status, 0) };
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        }
    }
    drop(c);
    p.join();
}

/// A start's budget covers the connect and the handshake too: a peer that never greets
/// fails a 400 ms VMA start or a 400 ms PBS start with that budget's timeout, not with the
/// 5 s handshake timeout that follows it.
#[test]
fn a_start_budget_bounds_the_handshake() {
    use vzdump_qemu::backup::{self, PbsParams, VmaParams};
    let budget = Duration::from_millis(400);
    // Each start against its own peer that never greets: the budget's timeout.
    let check = |start: &dyn Fn(&Peer) -> vzdump_qemu::Result<String>| {
        let p = FakePeer::start(|_s| std::thread::sleep(Duration::from_millis(800)));
        let err = start(&Peer::path(&p.socket)).unwrap_err();
        assert_eq!(
            cause_of(&err),
            (Cause::Timeout { after: budget }, Stage::Handshake),
            "{err}"
        );
        p.join();
    };
    let null = std::fs::File::create("/dev/null").unwrap();
    let vma = VmaParams::default();
    check(&|peer| backup::start_vma(peer, &Options::default(), null.as_fd(), &vma, Some(budget)));
    let pbs: PbsParams = vzdump_qemu::loose::from_json(json!({
        "backup-file": "r@pbs:s", "backup-id": "1", "backup-time": 1
    }))
    .unwrap();
    check(&|peer| backup::start_pbs(peer, &Options::default(), &pbs, Some(budget)));
}
