//! The guest-agent client and the fs-freeze/thaw steps, against real qemu-ga (with every
//! host-changing command blocked) and against scripted agents.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::{json, Value};
use testkit::{read_request, with_signal_after, FakePeer, QemuGa, Requests, TempDir};
use vzdump_qemu::error::{Cause, Stage};
use vzdump_qemu::log::Level;
use vzdump_qemu::qga::{self, Options};
use vzdump_qemu::qmp::{ErrorClass, Peer};
use vzdump_qemu::{Error, Style};

use common::{assert_error_reply, cause_of};

fn agent_peer(ga: &QemuGa) -> Peer {
    Peer::qga_vmid_in(QemuGa::VMID, ga.vm.dir.path())
}

fn opts() -> Options {
    Options::default()
}

/// Refuses to go on unless the agent reports freeze and thaw disabled: the host agent must
/// never freeze the host's filesystems.
fn assert_freeze_blocked(peer: &Peer) {
    let info = qga::command(peer, "guest-info", None, None, &opts()).unwrap();
    for name in ["guest-fsfreeze-freeze", "guest-fsfreeze-thaw"] {
        let entry = info["supported_commands"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed: {info}"));
        assert_eq!(entry["enabled"], false, "{name} must be blocked: {entry}");
    }
}

/// Collects log lines of the freeze steps.
fn logger(lines: &mut Vec<(Level, String)>) -> impl FnMut(Level, &str) + '_ {
    move |level, text| lines.push((level, text.to_string()))
}

#[test]
fn real_agent_ping_info_and_status() {
    let ga = QemuGa::start();
    let peer = agent_peer(&ga);
    qga::ping(&peer, &opts()).unwrap();

    let out = std::process::Command::new(QemuGa::binary())
        .arg("--version")
        .output()
        .unwrap();
    let banner = String::from_utf8(out.stdout).unwrap();
    let version = banner.split_whitespace().last().unwrap();
    let info = qga::command(&peer, "guest-info", None, None, &opts()).unwrap();
    assert_eq!(info["version"], version, "{info}");

    assert_eq!(qga::fs_freeze_status(&peer, &opts()).unwrap(), "thawed");
}

#[test]
fn real_agent_disabled_command_keeps_class_and_desc() {
    let ga = QemuGa::start();
    let peer = agent_peer(&ga);
    assert_freeze_blocked(&peer);
    let current = Options {
        style: Style::Current,
        ..opts()
    };
    let err = qga::command(&peer, "guest-fsfreeze-freeze", None, None, &current).unwrap_err();
    let (Cause::Qemu { class, desc }, Stage::Command) = cause_of(&err) else {
        panic!("expected an error reply, got {err}");
    };
    assert_eq!(class, ErrorClass::CommandNotFound);
    assert!(
        desc.starts_with("Command guest-fsfreeze-freeze has been disabled"),
        "{desc}"
    );
    // proxmox/qemu-server src/PVE/QMPClient.pm `cmd` today: "$peer->{name} $peer->{type}
    // command ..." with type qga ...
    assert_eq!(
        err.to_string(),
        format!("VM 100 qga command 'guest-fsfreeze-freeze' failed - {desc}")
    );
    // ... and the seed's client of 2020: "VM $vmid qmp command ..." for the agent too.
    let err = qga::command(&peer, "guest-fsfreeze-freeze", None, None, &opts()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("VM 100 qmp command 'guest-fsfreeze-freeze' failed - {desc}")
    );

    let err = qga::command(&peer, "no-such-cmd", Some(json!({})), None, &opts()).unwrap_err();
    assert_eq!(err.class(), Some(&ErrorClass::CommandNotFound));
    assert_eq!(err.desc(), "The command no-such-cmd has not been found");
}

#[test]
fn real_agent_fs_freeze_and_thaw_log_the_disabled_errors() {
    let ga = QemuGa::start();
    let peer = agent_peer(&ga);
    assert_freeze_blocked(&peer);

    let mut lines = Vec::new();
    assert!(qga::fs_freeze(&peer, &opts(), &mut logger(&mut lines)));
    qga::fs_thaw(&peer, &opts(), &mut logger(&mut lines));

    assert_eq!(lines.len(), 4, "{lines:?}");
    // Each step: its info line, then the agent's error at err level, in the seed's wording
    // (the default style): see real_agent_disabled_command_keeps_class_and_desc.
    for (step, (issuing, failed)) in lines.chunks(2).zip([
        (
            "issuing guest-agent 'fs-freeze' command",
            "VM 100 qmp command 'guest-fsfreeze-freeze' failed - Command guest-fsfreeze-freeze has been disabled",
        ),
        (
            "issuing guest-agent 'fs-thaw' command",
            "VM 100 qmp command 'guest-fsfreeze-thaw' failed - Command guest-fsfreeze-thaw has been disabled",
        ),
    ]) {
        assert_eq!(step[0], (Level::Info, issuing.to_string()));
        assert_eq!(step[1].0, Level::Err, "{issuing}: {lines:?}");
        assert!(step[1].1.starts_with(failed), "{lines:?}");
    }
    assert_eq!(qga::fs_freeze_status(&peer, &opts()).unwrap(), "thawed");
}

#[test]
fn real_agent_sync_after_a_client_left_garbage() {
    let ga = QemuGa::start();
    let peer = agent_peer(&ga);

    // Half a command, then gone.
    let mut s = UnixStream::connect(&ga.socket).unwrap();
    s.write_all(b"{\"execute\":\"guest-pi").unwrap();
    drop(s);
    qga::ping(&peer, &opts()).unwrap();

    // A client that synced with its own id, then sent half a command and gave up. It reads
    // what the agent sent before closing: this qemu-ga (unix-listen mode) stops on the
    // ECONNRESET that closing with unread replies causes, which QEMU's chardev does not.
    let mut s = UnixStream::connect(&ga.socket).unwrap();
    s.write_all(b"{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":1}}\n{\"execute\":\"guest-fsfreeze-st")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"\xff{\"return\": 1}\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "agent closed: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    drop(s);
    assert_eq!(qga::fs_freeze_status(&peer, &opts()).unwrap(), "thawed");
}

#[test]
fn real_agent_many_operations_in_a_row() {
    let ga = QemuGa::start();
    let peer = agent_peer(&ga);
    for i in 0..60 {
        match i % 3 {
            0 => qga::ping(&peer, &opts()).unwrap(),
            1 => assert_eq!(qga::fs_freeze_status(&peer, &opts()).unwrap(), "thawed"),
            _ => {
                let info = qga::command(&peer, "guest-info", None, None, &opts()).unwrap();
                assert!(info["supported_commands"].is_array(), "{info}");
            }
        }
    }
}

#[test]
fn no_vm_means_not_running() {
    let dir = TempDir::new("qga-none");
    let peer = Peer::qga_vmid_in(100, dir.path());
    let err = qga::ping(&peer, &opts()).unwrap_err();
    // proxmox/qemu-server src/PVE/QemuServer/Monitor.pm `qmp_cmd`: the running check comes
    // first, for the agent too.
    assert!(matches!(err, Error::NotRunning { vmid: 100 }), "{err}");
    assert_eq!(err.to_string(), "VM 100 not running");
    // Without a reply, the freeze step skips.
    let mut lines = Vec::new();
    assert!(!qga::fs_freeze(&peer, &opts(), &mut logger(&mut lines)));
    assert_eq!(lines.len(), 1);
}

#[test]
fn running_vm_without_agent_socket() {
    let vm = testkit::Qemu::start_vm(100, &["-S"]);
    let peer = Peer::qga_vmid_in(100, vm.dir.path());
    let current = Options {
        style: Style::Current,
        ..opts()
    };
    // proxmox/qemu-server src/PVE/QemuServer/Monitor.pm `qmp_cmd` today tests the agent's
    // own socket file: "unable to open monitor socket".
    let err = qga::ping(&peer, &current).unwrap_err();
    assert!(matches!(err, Error::NoSocket { .. }), "{err}");
    assert_eq!(err.to_string(), "unable to open monitor socket");
    // The seed's `qmp_cmd` tested the monitor's socket, which exists, so the connect fails
    // (PVE::QMPClient `$open_connection`, "$!" of ENOENT).
    let err = qga::ping(&peer, &opts()).unwrap_err();
    assert_eq!(
        cause_of(&err),
        (
            Cause::Connect {
                errno: libc::ENOENT
            },
            Stage::Connect
        )
    );
    assert_eq!(
        err.to_string(),
        "VM 100 qmp command 'guest-ping' failed - unable to connect to VM 100 qga socket - No such file or directory"
    );
}

#[test]
fn arguments_must_be_an_object() {
    let peer = Peer::qga_path("/nonexistent/qga.sock");
    let err = qga::command(&peer, "guest-sync", Some(json!(5)), None, &opts()).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

// Scripted agents.

/// Reads the client's flush byte and sync request; returns the sync id and the splitter.
fn read_sync(s: &mut UnixStream) -> (u64, Requests) {
    let mut flush = [0u8; 1];
    s.read_exact(&mut flush).unwrap();
    assert_eq!(
        flush[0], 0xFF,
        "the client must flush the agent's parser first"
    );
    let mut sp = Requests::default();
    let req = read_request(s, &mut sp).expect("sync request");
    assert_eq!(req["execute"], "guest-sync-delimited", "{req}");
    let id = req["arguments"]["id"].as_u64().expect("non-negative id");
    (id, sp)
}

/// Writes the agent's reply to a client 0xFF, then our sync reply.
fn answer_sync(s: &mut UnixStream, id: u64) {
    s.write_all(b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n")
        .unwrap();
    let mut reply = vec![0xFF];
    reply.extend_from_slice(format!("{{\"return\": {id}}}\n").as_bytes());
    s.write_all(&reply).unwrap();
}

/// Reads until the client closes.
fn drain(mut s: UnixStream) {
    let mut buf = [0u8; 4096];
    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
}

fn fake_peer(p: &FakePeer) -> Peer {
    Peer::qga_path(&p.socket)
}

/// A scripted agent that syncs with the client, reads its command and runs `script` on the
/// stream with it.
fn agent_answering<F>(script: F) -> FakePeer
where
    F: FnOnce(UnixStream, Value) + Send + 'static,
{
    FakePeer::start(|mut s| {
        let (id, mut sp) = read_sync(&mut s);
        answer_sync(&mut s, id);
        let req = read_request(&mut s, &mut sp).expect("command");
        script(s, req);
    })
}

/// `command` without arguments, with the default options, waiting up to `timeout`.
fn bare_command(
    peer: &Peer,
    command: &str,
    timeout: Option<Duration>,
) -> vzdump_qemu::Result<Value> {
    qga::command(peer, command, None, timeout, &opts())
}

/// Options whose sync gives up on a silent agent after 200 ms.
fn impatient() -> Options {
    Options {
        ping_timeout: Duration::from_millis(200),
        ..Options::default()
    }
}

#[test]
fn silent_agent_skips_freeze() {
    let p = FakePeer::start(drain);
    let mut lines = Vec::new();
    assert!(!qga::fs_freeze(
        &fake_peer(&p),
        &impatient(),
        &mut logger(&mut lines)
    ));
    assert_eq!(
        lines,
        [(
            Level::Info,
            "skipping guest-agent 'fs-freeze', agent configured but not running?".to_string()
        )]
    );
    p.join();
}

#[test]
fn silent_agent_times_out() {
    let p = FakePeer::start(drain);
    let err = qga::ping(&fake_peer(&p), &impatient()).unwrap_err();
    let timeout = Cause::Timeout {
        after: Duration::from_millis(200),
    };
    assert_eq!(
        cause_of(&err),
        (timeout, Stage::Handshake),
        "the sync timed out"
    );
    assert_eq!(err.command_error().unwrap().command, "guest-ping");
    // proxmox/qemu-server src/PVE/QMPClient.pm `mux_timeout`.
    assert!(
        err.to_string()
            .ends_with("command 'guest-ping' failed - got timeout"),
        "{err}"
    );
    p.join();
}

#[test]
fn stale_sync_replies_are_skipped() {
    let p = FakePeer::start(|mut s| {
        let (id, mut sp) = read_sync(&mut s);
        // Leftovers, a stale sync reply, then two sentinels in a row before ours.
        let mut bytes = b"junk{\"return\": {}}\n\xff".to_vec();
        bytes.extend_from_slice(format!("{{\"return\": {}}}\n", id + 1).as_bytes());
        bytes.extend_from_slice(b"\xff\xff");
        bytes.extend_from_slice(format!("{{\"return\": {id}}}\n").as_bytes());
        s.write_all(&bytes).unwrap();
        let req = read_request(&mut s, &mut sp).expect("command");
        assert_eq!(req, json!({"execute": "guest-fsfreeze-status"}));
        s.write_all(b"{\"return\": \"frozen\"}\n").unwrap();
        drain(s);
    });
    assert_eq!(
        qga::fs_freeze_status(&fake_peer(&p), &opts()).unwrap(),
        "frozen"
    );
    p.join();
}

#[test]
fn error_reply_keeps_class_and_desc() {
    let p = agent_answering(|mut s, req| {
        assert_eq!(
            req,
            json!({"execute": "guest-exec-status", "arguments": {"pid": 42}})
        );
        s.write_all(
            b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid parameter 'pid'\"}}\n",
        )
        .unwrap();
        drain(s);
    });
    let peer = fake_peer(&p);
    let err = qga::command(
        &peer,
        "guest-exec-status",
        Some(json!({"pid": 42})),
        None,
        &opts(),
    )
    .unwrap_err();
    assert_error_reply(
        &err,
        ("qga", &p.socket),
        "guest-exec-status",
        ErrorClass::GenericError,
        "Invalid parameter 'pid'",
    );
    p.join();
}

#[test]
fn signal_during_wait_is_interrupted() {
    let p = FakePeer::start(|mut s| {
        read_sync(&mut s);
        drain(s);
    });
    let peer = fake_peer(&p);
    let err = with_signal_after(Duration::from_millis(100), || {
        bare_command(&peer, "guest-info", Some(Duration::from_secs(30)))
    })
    .unwrap_err();
    assert!(err.is_interrupted(), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "qga socket '{}' command 'guest-info' interrupted by signal",
            p.socket.display()
        )
    );
    p.join();
}

#[test]
fn a_signal_check_that_lets_signals_pass_gets_the_late_reply() {
    let p = agent_answering(|mut s, req| {
        std::thread::sleep(Duration::from_millis(800));
        s.write_all(
            format!("{}\n", json!({"return": {"version": "9"}, "id": req["id"]})).as_bytes(),
        )
        .unwrap();
        drain(s);
    });
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = asked.clone();
    let options = Options {
        on_signal: Some(vzdump_qemu::wait::SignalCheck::new(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            false
        })),
        ..opts()
    };
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let signals = testkit::repeated_signals(Duration::from_millis(100), &done);
    let reply = qga::command(&fake_peer(&p), "guest-info", None, None, &options);
    drop(signals);
    assert_eq!(reply.unwrap(), json!({"version": "9"}));
    assert!(
        asked.load(std::sync::atomic::Ordering::SeqCst) >= 10,
        "{asked:?}"
    );
    p.join();
}

#[test]
fn garbage_after_the_sentinel_is_a_protocol_error() {
    let p = FakePeer::start(|mut s| {
        read_sync(&mut s);
        s.write_all(b"\xffhello, not json\n").unwrap();
        drain(s);
    });
    let err = qga::ping(&fake_peer(&p), &opts()).unwrap_err();
    let (Cause::Protocol { reason }, Stage::Handshake) = cause_of(&err) else {
        panic!("expected a protocol error, got {err}");
    };
    assert_eq!(
        reason,
        "after the sync sentinel: unexpected data outside a JSON object: 'hello, not json\\n'"
    );
    p.join();
}

#[test]
fn shutdown_without_reply_succeeds() {
    for (command, silence) in [
        // End of file after the command: the guest went away.
        ("guest-shutdown", None),
        // Silence after the command (as long as the client waits): the guest is suspended.
        ("guest-suspend-ram", Some(Duration::from_millis(300))),
    ] {
        let p = agent_answering(move |s, req| {
            assert_eq!(req["execute"], command);
            if silence.is_some() {
                drain(s);
            }
        });
        let got = bare_command(&fake_peer(&p), command, silence).unwrap();
        assert_eq!(got, Value::Null, "{command}");
        p.join();
    }

    // But a silent sync is still an error: the command was never sent.
    let p = FakePeer::start(drain);
    let err = bare_command(
        &fake_peer(&p),
        "guest-shutdown",
        Some(Duration::from_millis(200)),
    )
    .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    p.join();
}

/// An agent on its own socket serving one connection per script, in order: each script
/// gets the stream after the sync and the command that followed. Returns the socket's
/// directory (kept for the test's length) and the thread.
fn agent_per_connection(
    scripts: Vec<Box<dyn FnOnce(UnixStream, Value) + Send>>,
) -> (TempDir, Peer, std::thread::JoinHandle<()>) {
    let dir = TempDir::new("qga-conns");
    let socket = dir.join("100.qga");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let thread = std::thread::spawn(move || {
        for script in scripts {
            let (mut s, _) = listener.accept().unwrap();
            let (id, mut sp) = read_sync(&mut s);
            answer_sync(&mut s, id);
            let req = read_request(&mut s, &mut sp).expect("command");
            script(s, req);
        }
    });
    (dir, Peer::qga_path(&socket), thread)
}

/// A command that gets no answer: the client times out and closes.
fn no_answer(command: &'static str) -> Box<dyn FnOnce(UnixStream, Value) + Send> {
    Box::new(move |s, req| {
        assert_eq!(req["execute"], command, "{req}");
        drain(s);
    })
}

/// A command answered with `reply` (a whole reply object).
fn answer(command: &'static str, reply: Value) -> Box<dyn FnOnce(UnixStream, Value) + Send> {
    Box::new(move |mut s, req| {
        assert_eq!(req["execute"], command, "{req}");
        s.write_all(format!("{reply}\n").as_bytes()).unwrap();
        drain(s);
    })
}

/// Today's guest_fsfreeze with each wait cut to 200 ms (`command_timeout` replaces the
/// 10 minutes): the result and the lines.
fn fsfreeze_polling(
    scripts: Vec<Box<dyn FnOnce(UnixStream, Value) + Send>>,
) -> (vzdump_qemu::Result<()>, Vec<String>) {
    let (_dir, peer, thread) = agent_per_connection(scripts);
    let options = Options {
        command_timeout: Some(Duration::from_millis(200)),
        style: Style::Current,
        ..Options::default()
    };
    let mut lines = Vec::new();
    let result = qga::guest_fsfreeze(&peer, &options, &mut |_, l| lines.push(l.to_string()));
    thread.join().expect("agent script failed");
    (result, lines)
}

/// proxmox/qemu-server `src/PVE/QemuServer/Agent.pm`, `guest_fsfreeze`: the status
/// queries after a freeze that did not answer in time, each announced.
const STILL_WAITING: &str = "still waiting on guest fs freeze - timeout in ";

#[test]
fn a_freeze_without_answer_is_followed_by_status_queries_until_one_answers() {
    let (result, lines) = fsfreeze_polling(vec![
        no_answer("guest-fsfreeze-freeze"),
        no_answer("guest-fsfreeze-status"),
        answer("guest-fsfreeze-status", json!({"return": "frozen"})),
    ]);
    result.unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines.iter().all(|l| l.starts_with(STILL_WAITING)),
        "{lines:?}"
    );
}

#[test]
fn a_status_other_than_frozen_fails_the_freeze() {
    let (result, _) = fsfreeze_polling(vec![
        no_answer("guest-fsfreeze-freeze"),
        answer("guest-fsfreeze-status", json!({"return": "thawed"})),
    ]);
    // Agent.pm, guest_fsfreeze: the status must be 'frozen'.
    assert_eq!(
        result.unwrap_err().to_string(),
        "unable to freeze guest fs - unexpected status 'thawed'"
    );
}

#[test]
fn an_agent_error_on_the_status_query_fails_the_freeze() {
    let (result, lines) = fsfreeze_polling(vec![
        no_answer("guest-fsfreeze-freeze"),
        answer(
            "guest-fsfreeze-status",
            json!({"error": {"class": "GenericError", "desc": "fs is busy"}}),
        ),
    ]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    // Agent.pm, guest_fsfreeze and check_agent_error.
    assert_eq!(
        result.unwrap_err().to_string(),
        "querying status after freezing guest fs failed - Agent error: fs is busy"
    );
}

#[test]
fn five_status_queries_without_answer_fail_the_freeze() {
    let mut scripts = vec![no_answer("guest-fsfreeze-freeze")];
    scripts.extend((0..5).map(|_| no_answer("guest-fsfreeze-status")));
    let (result, lines) = fsfreeze_polling(scripts);
    assert_eq!(lines.len(), 5, "{lines:?}");
    let error = result.unwrap_err().to_string();
    // Agent.pm, guest_fsfreeze: "timeout after <6 waits> minutes" (0 here: 200 ms each).
    assert_eq!(
        error,
        "querying status after freezing guest fs failed - timeout after 0 minutes"
    );
}

#[test]
fn a_refused_freeze_is_not_followed_by_status_queries() {
    let (result, lines) = fsfreeze_polling(vec![answer(
        "guest-fsfreeze-freeze",
        json!({"error": {"class": "GenericError", "desc": "Command guest-fsfreeze-freeze has been disabled"}}),
    )]);
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(
        result.unwrap_err().to_string(),
        "unable to freeze guest fs - Command guest-fsfreeze-freeze has been disabled"
    );
}
