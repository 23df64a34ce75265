//! Every fault flag once.

mod common;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use common::Sim;
use serde_json::{json, Value};

const DISK: &[&str] = &["--gen-disk", "drive-scsi0=8M"];

fn sim(flags: &[&str]) -> Sim {
    let mut args = DISK.to_vec();
    args.extend_from_slice(flags);
    Sim::start(&args)
}

/// A VMA backup under the fault `flags`, run to its end: the last `query-backup` reply,
/// the archive bytes and the uuid `backup` returned.
fn backup_to_end(flags: &[&str]) -> (Value, Vec<u8>, String) {
    let sim = sim(flags);
    let mut c = sim.client();
    let (sink, uuid) = c.start_vma_backup();
    let st = c.wait_backup_end();
    (st, sink.finish(), uuid)
}

#[test]
fn die_at_exits_with_9_mid_stream() {
    let mut sim = sim(&["--fault-die-at", "50"]);
    let mut c = sim.client();
    let (sink, _) = c.start_vma_backup();
    assert_eq!(sim.wait().code(), Some(9));
    let data = sink.finish();
    assert!(!data.is_empty() && vma::verify(&data[..]).is_err());
    // The connection is gone with the process: after the job events sent so far, EOF.
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut c.stream, &mut rest);
    for line in rest.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let m: serde_json::Value = serde_json::from_slice(line).unwrap();
        assert!(m["event"].is_string(), "{m}");
    }
    // Its socket file stays behind, as after a crash.
    assert!(sim.socket.exists());
}

#[test]
fn error_at_fails_the_job_with_the_given_or_default_message() {
    for (flag, msg) in [
        (
            "40:backup write to server failed",
            "backup write to server failed",
        ),
        ("40", "job failed with err -5 - Input/output error"),
    ] {
        let (st, archive, _) = backup_to_end(&["--fault-error-at", flag]);
        assert_eq!(st["status"], "error", "{flag}: {st}");
        assert_eq!(st["errmsg"], msg, "{flag}: {st}");
        // 40 % of 8 MiB is reached with the 3.25 MiB cluster: the job shows the last burst
        // published before it (1 MiB + 2 MiB), not the bytes the worker had read.
        assert_eq!(st["transferred"], 3 << 20, "{flag}: {st}");
        assert!(
            st["zero-bytes"].as_u64().unwrap() <= 3 << 20,
            "{flag}: {st}"
        );
        assert!(
            vma::verify(&archive[..]).is_err(),
            "{flag}: writer closed early"
        );
    }
}

#[test]
fn error_at_with_smooth_progress_shows_the_bytes_read() {
    let (st, _, _) = backup_to_end(&["--fault-error-at", "40", "--smooth-progress"]);
    assert_eq!(st["status"], "error");
    let transferred = st["transferred"].as_u64().unwrap();
    let total = st["total"].as_u64().unwrap();
    assert!(
        transferred * 100 >= 40 * total && transferred < total,
        "{st}"
    );
}

#[test]
fn write_error_at_is_an_eio_of_the_vma_writer() {
    let (st, archive, _) = backup_to_end(&["--fault-write-error-at", "10"]);
    assert_eq!(st["status"], "error");
    assert_eq!(
        st["errmsg"],
        "vma_queue_write: write error - Input/output error"
    );
    assert!(vma::verify(&archive[..]).is_err());
}

#[test]
fn wrong_uuid_in_query_backup_only() {
    let (st, archive, uuid) = backup_to_end(&["--fault-wrong-uuid"]);
    assert_eq!(st["status"], "done");
    let reported = st["uuid"].as_str().unwrap();
    assert_eq!(reported.len(), 36);
    assert_ne!(reported, uuid);
    // The archive carries the uuid `backup` returned.
    let info = vma::verify(&archive[..]).unwrap();
    assert_eq!(info.header.uuid_string(), uuid);
}

#[test]
fn hang_wedges_that_connection_only() {
    let sim = sim(&["--fault-hang", "query-backup"]);
    let mut c = sim.client();
    c.send(br#"{"execute":"query-backup","id":1}{"execute":"query-status","id":2}"#);
    c.stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    let err = std::io::Read::read(&mut c.stream, &mut buf).unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut
    ));
    drop(c);
    // The next client is served (after the wedged one gave up).
    let mut c = sim.client();
    assert_eq!(c.ok("query-status", json!({}))["running"], true);
}

#[test]
fn garbage_reply_then_normal_service() {
    let sim = sim(&["--fault-garbage", "query-status"]);
    let mut c = sim.client();
    c.send(br#"{"execute":"query-status","id":1}"#);
    let line = c.line();
    assert!(serde_json::from_slice::<serde_json::Value>(&line).is_err());
    assert!(!line.is_empty());
    assert_eq!(c.ok("query-version", json!({}))["qemu"]["major"], 11);
}

#[test]
fn garbage_reply_to_backup_still_starts_it() {
    let sim = sim(&["--fault-garbage", "backup"]);
    let mut c = sim.client();
    let sink = c.backup_pipe();
    c.send(br#"{"execute":"backup","arguments":{"backup-file":"/dev/fdname/backup"},"id":1}"#);
    // The jobs' events may come first (JOB_STATUS_CHANGE "created" always does).
    let line = loop {
        let line = c.line();
        match serde_json::from_slice::<serde_json::Value>(&line) {
            Ok(m) if m.get("event").is_some() => continue,
            _ => break line,
        }
    };
    assert!(serde_json::from_slice::<serde_json::Value>(&line).is_err());
    c.expect_done(sink);
}

#[test]
fn slow_replies_come_late_but_right() {
    let sim = sim(&["--fault-slow-ms", "150"]);
    let mut c = sim.client(); // greeting is not delayed, qmp_capabilities is
    let begun = Instant::now();
    assert_eq!(c.ok("query-status", json!({}))["running"], true);
    assert!(begun.elapsed() >= Duration::from_millis(150));
}

#[test]
fn count_mismatch_at_done() {
    let (st, archive, _) = backup_to_end(&["--fault-count-mismatch"]);
    assert_eq!(st["status"], "done");
    assert_eq!(st["transferred"], (8 << 20) - 65536);
    assert_eq!(st["total"], 8 << 20);
    vma::verify(&archive[..]).unwrap();
}
