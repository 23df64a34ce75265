//! QMP wire behaviour: greeting, negotiation, ids, framing, argument errors, one client at
//! a time, run state, process lifecycle.

mod common;

use std::io::Read;
use std::process::Command;
use std::time::Duration;

use common::{binary, Sim, TempDir};
use serde_json::{json, Value};

#[test]
fn greeting_is_qemus_line() {
    let sim = Sim::start(&[]);
    let mut c = sim.raw_client();
    assert_eq!(
        String::from_utf8(c.line()).unwrap(),
        r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 11}, "package": "pve-qemu-kvm_11.0.0-2"}, "capabilities": []}}"#
    );
    drop(c);
    let sim = Sim::start(&["--version", "5.0.1", "--package", "pve-qemu-kvm_5.0.0-9"]);
    let g = sim.raw_client().message();
    assert_eq!(
        g,
        json!({"QMP": {"version": {"qemu": {"major": 5, "minor": 0, "micro": 1},
            "package": "pve-qemu-kvm_5.0.0-9"}, "capabilities": []}})
    );
    let mut c = sim.client();
    assert_eq!(
        c.ok("query-version", json!({})),
        g["QMP"]["version"],
        "query-version is the greeting's version"
    );
}

#[test]
fn negotiation_comes_first_and_only_once() {
    let sim = Sim::start(&[]);
    let mut c = sim.raw_client();
    c.message();
    // Input is accepted without reading the greeting first (the Perl client does that).
    c.send(br#"{"execute":"query-status","id":7}"#);
    assert_eq!(
        String::from_utf8(c.line()).unwrap(),
        r#"{"id": 7, "error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}}"#
    );
    c.send(br#"{"execute":"nonexistent"}"#);
    assert_eq!(
        c.message()["error"]["desc"],
        "Expecting capabilities negotiation with 'qmp_capabilities'"
    );
    c.send(br#"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}"#);
    assert_eq!(
        c.message(),
        json!({"error": {"class": "GenericError", "desc": "Capability 'oob' not available"}})
    );
    c.send(br#"{"execute":"qmp_capabilities"}"#);
    assert_eq!(String::from_utf8(c.line()).unwrap(), r#"{"return": {}}"#);
    assert_eq!(
        c.err("qmp_capabilities", json!({})),
        (
            "CommandNotFound".into(),
            "Capabilities negotiation is already complete, command ignored".into()
        )
    );
    assert_eq!(
        c.err("no-such-command", json!({})),
        (
            "CommandNotFound".into(),
            "The command no-such-command has not been found".into()
        )
    );
}

#[test]
fn ids_are_echoed_verbatim() {
    let sim = Sim::start(&[]);
    let mut c = sim.client();
    for id in [
        json!("1234:5"),
        json!(42),
        json!(-3),
        json!({"a": [1, "x"], "b": null}),
        json!([true, false]),
    ] {
        let req = json!({"execute": "query-status", "id": id});
        c.send(req.to_string().as_bytes());
        let r = c.reply();
        assert_eq!(r["id"], id);
        assert_eq!(r["return"], json!({"status": "running", "running": true}));
    }
    // No id: none in the reply.
    c.send(br#"{"execute":"query-status"}"#);
    assert_eq!(
        String::from_utf8(c.line()).unwrap(),
        r#"{"return": {"status": "running", "running": true}}"#
    );
    // Errors carry the id too; QEMU prints it first.
    c.send(br#"{"execute":"query-status","id":"x","bogus":1}"#);
    assert_eq!(
        String::from_utf8(c.line()).unwrap(),
        r#"{"id": "x", "error": {"class": "GenericError", "desc": "QMP input member 'bogus' is unexpected"}}"#
    );
}

#[test]
fn requests_without_newlines_and_split_writes() {
    let sim = Sim::start(&[]);
    let mut c = sim.raw_client();
    c.message();
    c.send(br#"{"execute":"qmp_capabilities","id":1}{"execute":"query-status","id":2}"#);
    assert_eq!(c.reply()["id"], 1);
    assert_eq!(c.reply()["id"], 2);
    // One request in pieces, a brace inside a string.
    c.send(br#"{"execute":"query-st"#);
    std::thread::sleep(Duration::from_millis(20));
    c.send(br#"atus","id":"}{"}"#);
    assert_eq!(c.reply()["id"], "}{");
}

#[test]
fn parse_errors_have_no_id_and_do_not_end_the_session() {
    let sim = Sim::start(&[]);
    let mut c = sim.client();
    c.send(b"hello ");
    assert_eq!(
        c.message(),
        json!({"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword 'hello'"}})
    );
    c.send(br#"[1] {"a" 1}"#);
    assert_eq!(
        c.message()["error"]["desc"],
        "QMP input must be a JSON object"
    );
    assert_eq!(
        c.message()["error"]["desc"],
        "JSON parse error, missing : in object pair"
    );
    c.send(br#"{"id":1}"#);
    assert_eq!(
        c.message(),
        json!({"id": 1, "error": {"class": "GenericError", "desc": "QMP input lacks member 'execute'"}})
    );
    assert_eq!(c.ok("query-status", json!({}))["running"], true);
}

#[test]
fn qapi_argument_errors() {
    let sim = Sim::start(&["--gen-disk", "drive-scsi0=4M"]);
    let mut c = sim.client();
    for (cmd, args, desc) in [
        ("backup", json!({}), "Parameter 'backup-file' is missing"),
        (
            "backup",
            json!({"backup-file": 1}),
            "Invalid parameter type for 'backup-file', expected: string",
        ),
        (
            "backup",
            json!({"backup-file": "x", "speed": "fast"}),
            "Invalid parameter type for 'speed', expected: integer",
        ),
        (
            "backup",
            json!({"backup-file": "x", "backup-time": 1.5}),
            "Invalid parameter type for 'backup-time', expected: integer",
        ),
        (
            "backup",
            json!({"backup-file": "x", "use-dirty-bitmap": "yes"}),
            "Invalid parameter type for 'use-dirty-bitmap', expected: boolean",
        ),
        (
            "backup",
            json!({"backup-file": "x", "format": "dir"}),
            "Parameter 'format' does not accept value 'dir'",
        ),
        (
            "backup",
            json!({"backup-file": "x", "timeout": 10}),
            "Parameter 'timeout' is unexpected",
        ),
        (
            "query-backup",
            json!({"x": 1}),
            "Parameter 'x' is unexpected",
        ),
        ("getfd", json!({}), "Parameter 'fdname' is missing"),
    ] {
        assert_eq!(
            c.err(cmd, args.clone()),
            ("GenericError".to_string(), desc.to_string()),
            "{cmd} {args}"
        );
    }
    // Nothing was started by any of these.
    assert_eq!(c.ok("query-backup", json!({})), json!({"finishing": false}));
}

#[test]
fn second_client_waits_for_the_first() {
    let sim = Sim::start(&[]);
    let mut first = sim.client();
    let mut second = sim.raw_client();
    second
        .stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut byte = [0u8; 1];
    let err = second.stream.read(&mut byte).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    assert_eq!(first.ok("query-status", json!({}))["status"], "running");
    drop(first);
    second
        .stream
        .set_read_timeout(Some(common::PATIENCE))
        .unwrap();
    assert!(second.message().get("QMP").is_some());
}

#[test]
fn run_state_and_events() {
    let sim = Sim::start(&["--state", "prelaunch"]);
    let mut c = sim.client();
    assert_eq!(
        c.ok("query-status", json!({})),
        json!({"status": "prelaunch", "running": false})
    );
    // stop does nothing unless running.
    c.ok("stop", json!({}));
    assert!(c.events.is_empty());
    c.ok("cont", json!({}));
    assert_eq!(c.events.len(), 1);
    assert_eq!(c.events[0]["event"], "RESUME");
    assert!(c.events[0]["timestamp"]["seconds"].as_i64().unwrap() > 0);
    c.ok("cont", json!({}));
    assert_eq!(c.events.len(), 1, "cont while running is silent");
    c.ok("stop", json!({}));
    assert_eq!(c.events[1]["event"], "STOP");
    assert_eq!(
        c.ok("query-status", json!({})),
        json!({"status": "paused", "running": false})
    );
}

#[test]
fn quit_replies_and_exits_removing_the_socket() {
    let mut sim = Sim::start(&[]);
    let mut c = sim.client();
    assert_eq!(c.ok("quit", json!({})), json!({}));
    let ev = c.message();
    assert_eq!(ev["event"], "SHUTDOWN");
    assert_eq!(
        ev["data"],
        json!({"guest": false, "reason": "host-qmp-quit"})
    );
    assert_eq!(sim.wait().code(), Some(0));
    assert!(!sim.socket.exists());
}

#[test]
fn sigterm_exits_cleanly_and_a_stale_socket_is_replaced() {
    let mut sim = Sim::start(&[]);
    let _c = sim.client();
    sim.sigterm();
    assert_eq!(sim.wait().code(), Some(0));
    assert!(!sim.socket.exists());

    // A socket file nobody listens on is replaced.
    let dir = TempDir::new("stale");
    let stale = std::os::unix::net::UnixListener::bind(dir.join("sim.qmp")).unwrap();
    drop(stale);
    assert!(dir.join("sim.qmp").exists());
    let sim = Sim::start_in(dir, &[]);
    assert!(sim.client().ok("query-status", json!({}))["running"] == true);
}

#[test]
fn no_proxmox_support_and_support_fields() {
    let sim = Sim::start(&[]);
    let mut c = sim.client();
    let s = c.ok("query-proxmox-support", json!({}));
    for key in [
        "pbs-dirty-bitmap",
        "query-bitmap-info",
        "pbs-dirty-bitmap-savevm",
        "pbs-dirty-bitmap-migration",
        "pbs-masterkey",
        "backup-access-api",
        "backup-fleecing",
        "backup-max-workers",
    ] {
        assert_eq!(s[key], true, "{key}");
    }
    assert!(s["pbs-library-version"].as_str().unwrap().contains(" ("));
    assert_eq!(c.ok("query-pbs-bitmap-info", json!({})), json!([]));
    drop(c);
    let sim = Sim::start(&["--no-proxmox-support"]);
    let mut c = sim.client();
    for cmd in ["query-proxmox-support", "query-pbs-bitmap-info"] {
        assert_eq!(
            c.err(cmd, json!({})),
            (
                "CommandNotFound".into(),
                format!("The command {cmd} has not been found")
            )
        );
    }
}

#[test]
fn record_file_has_every_request_compact_and_in_order() {
    let dir = TempDir::new("rec");
    let record = dir.join("requests.jsonl");
    let sim = Sim::start_in(dir, &["--record", record.to_str().unwrap()]);
    let mut c = sim.raw_client();
    c.message();
    c.send(b"{ \"execute\" : \"qmp_capabilities\" ,\n \"id\": \"a b\" }");
    c.reply();
    c.send(br#"{"id":2,"execute":"query-status","arguments":{}}"#);
    c.reply();
    c.send(b"not-json ");
    c.reply();
    let text = std::fs::read_to_string(&record).unwrap();
    assert_eq!(
        text,
        "{\"execute\":\"qmp_capabilities\",\"id\":\"a b\"}\n\
         {\"id\":2,\"execute\":\"query-status\",\"arguments\":{}}\n"
    );
}

#[test]
fn command_line_errors_exit_2_and_help_lists_every_flag() {
    for args in [
        &["--bogus"][..],
        &["--socket", "/tmp/x", "--rate", "fast"],
        &["--socket", "/tmp/x", "--gen-disk", "nosize"],
        &["--socket", "/tmp/x", "--fault-die-at", "150"],
        &["--gen-disk", "d=1M"],
        &["--socket", "/tmp/x", "--disk", "d=/nonexistent/disk.raw"],
    ] {
        let out = Command::new(binary()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    let out = Command::new(binary()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--socket",
        "--disk",
        "--gen-disk",
        "--rate",
        "--package",
        "--version",
        "--state",
        "--seed-era",
        "--finishing-ms",
        "--pbs-connect-delay-ms",
        "--no-proxmox-support",
        "--record",
        "--sim-tick",
        "--smooth-progress",
        "--pidfile",
        "--dump-gen-disk",
        "--fault-die-at",
        "--fault-error-at",
        "--fault-write-error-at",
        "--fault-wrong-uuid",
        "--fault-hang",
        "--fault-garbage",
        "--fault-slow-ms",
        "--fault-count-mismatch",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    assert!(!help.contains("--events"), "--events is gone");
    // `--version` is the simulated QEMU's; -V is the simulator's own.
    let out = Command::new(binary()).arg("-V").output().unwrap();
    assert!(out.status.success());
    let version = format!("pve-qmp-sim {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!(String::from_utf8_lossy(&out.stdout), version);
    let out = Command::new(binary())
        .args(["--socket", "/tmp/x", "--events"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option '--events'"));
}

#[test]
fn getfd_and_closefd_rules() {
    let sim = Sim::start(&[]);
    let mut c = sim.client();
    let generic = |d: &str| ("GenericError".to_string(), d.to_string());
    assert_eq!(
        c.err("getfd", json!({"fdname": "backup"})),
        generic("No file descriptor supplied via SCM_RIGHTS")
    );
    let (_r, w) = nix::unistd::pipe().unwrap();
    c.send_with_fd(
        br#"{"execute":"getfd","arguments":{"fdname":"1st"},"id":1}"#,
        &w,
    );
    assert_eq!(
        c.reply()["error"]["desc"],
        "Parameter 'fdname' expects a name not starting with a digit"
    );
    // Two requests in one write with one fd: it goes with the getfd among them.
    c.send_with_fd(
        br#"{"execute":"query-status","id":1}{"execute":"getfd","arguments":{"fdname":"a"},"id":2}{"execute":"getfd","arguments":{"fdname":"b"},"id":3}"#,
        &w,
    );
    assert!(c.reply().get("return").is_some());
    assert_eq!(c.reply(), json!({"return": {}, "id": 2}));
    assert_eq!(
        c.reply()["error"]["desc"],
        "No file descriptor supplied via SCM_RIGHTS"
    );
    assert_eq!(c.ok("closefd", json!({"fdname": "a"})), json!({}));
    assert_eq!(
        c.err("closefd", json!({"fdname": "a"})),
        generic("File descriptor named 'a' not found")
    );
}

/// As observed on QEMU 10.0.2: named fds belong to the monitor and outlive the
/// connection; a received fd nobody claimed is closed when the client leaves.
#[test]
fn named_fds_outlive_the_connection_unclaimed_ones_do_not() {
    let sim = Sim::start(&[]);
    let (named_r, named_w) = nix::unistd::pipe().unwrap();
    let (loose_r, loose_w) = nix::unistd::pipe().unwrap();
    let mut c = sim.client();
    c.getfd("backup", &named_w);
    c.send_with_fd(br#"{"execute":"query-status","id":"q"}"#, &loose_w);
    assert_eq!(c.reply()["id"], "q");
    drop((named_w, loose_w));
    drop(c);
    // The unclaimed one: the simulator closed its copy, so the reader sees EOF.
    let mut v = Vec::new();
    std::fs::File::from(loose_r).read_to_end(&mut v).unwrap();
    assert!(v.is_empty());
    // The named one is still there for the next client, and still open.
    let mut c = sim.client();
    c.ok("closefd", json!({"fdname": "backup"}));
    std::fs::File::from(named_r).read_to_end(&mut v).unwrap();
    assert!(v.is_empty());
    let (_, desc) = c.err("closefd", json!({"fdname": "backup"}));
    assert_eq!(desc, "File descriptor named 'backup' not found");
}

#[test]
fn sim_tick_flag_sends_sim_tick_before_query_backup() {
    let sim = Sim::start(&["--sim-tick"]);
    let mut c = sim.raw_client();
    c.message();
    c.send(br#"{"execute":"qmp_capabilities"}"#);
    c.message();
    for n in 1..=2 {
        c.send(br#"{"execute":"query-backup","id":1}"#);
        let tick: Value = c.message();
        assert_eq!(tick["event"], "SIM_TICK");
        assert_eq!(tick["data"], json!({"query": n}));
        assert_eq!(
            c.message(),
            json!({"return": {"finishing": false}, "id": 1})
        );
    }
}

#[test]
fn no_sim_tick_without_the_flag() {
    let sim = Sim::start(&["--gen-disk", "drive-scsi0=4M"]);
    let mut c = sim.raw_client();
    c.message();
    c.send(br#"{"execute":"qmp_capabilities"}"#);
    c.message();
    // The reply is the very next message: no event before it.
    c.send(br#"{"execute":"query-backup","id":1}"#);
    assert_eq!(
        c.message(),
        json!({"return": {"finishing": false}, "id": 1})
    );
    c.ok(
        "backup",
        json!({"backup-file": sim.dir.join("b.vma").to_str().unwrap()}),
    );
    c.wait_backup_end();
    assert!(!c.events.is_empty(), "job events came");
    assert!(
        !c.events.iter().any(|e| e["event"] == "SIM_TICK"),
        "{:?}",
        c.events
    );
}
