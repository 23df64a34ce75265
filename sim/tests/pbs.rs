//! PBS backups: arguments, counters, dirty bitmaps, connect delay.

mod common;

use std::time::{Duration, Instant};

use common::{generated, Sim, TempDir};
use serde_json::{json, Value};

const CHUNK: usize = 4 << 20;

fn pbs_args(id: &str) -> Value {
    json!({
        "backup-file": "root@pam@pbs.example:store1",
        "format": "pbs",
        "password": "secret",
        "backup-id": id,
        "backup-time": 1_700_000_000,
    })
}

/// Bytes of the all-zero 4 MiB chunks of `data` among those `dirty` selects.
fn zero_chunks(data: &[u8], dirty: impl Fn(usize) -> bool) -> u64 {
    data.chunks(CHUNK)
        .enumerate()
        .filter(|(i, c)| dirty(*i) && c.iter().all(|&b| b == 0))
        .map(|(_, c)| c.len() as u64)
        .sum()
}

#[test]
fn all_arguments_are_recorded_exactly() {
    let dir = TempDir::new("pbsrec");
    let record = dir.join("rec.jsonl");
    let sim = Sim::start_in(
        dir,
        &[
            "--gen-disk",
            "drive-scsi0=4M",
            "--record",
            record.to_str().unwrap(),
        ],
    );
    let conf = sim.dir.join("qemu-server.conf");
    std::fs::write(&conf, "cores: 2\n").unwrap();
    let mut c = sim.client();
    let request = format!(
        concat!(
            r#"{{"execute":"backup","arguments":{{"backup-file":"root@pam@pbs:store","password":"p w","#,
            r#""keyfile":"/etc/pve/priv/storage/pbs.enc","key-password":"kp","master-keyfile":"/etc/pve/priv/storage/pbs.master.pem","#,
            r#""fingerprint":"aa:bb","backup-ns":"ns1/sub","backup-id":"100","backup-time":1700000000,"#,
            r#""use-dirty-bitmap":true,"compress":false,"encrypt":true,"format":"pbs","config-file":"{}","#,
            r#""firewall-file":"{}","devlist":"drive-scsi0","speed":1048576000,"max-workers":16,"fleecing":false}},"id":"4711:9"}}"#
        ),
        conf.display(),
        conf.display()
    );
    c.send(request.as_bytes());
    let r = c.reply();
    assert_eq!(r["id"], "4711:9");
    assert_eq!(r["return"]["UUID"].as_str().unwrap().len(), 36);
    let lines: Vec<String> = std::fs::read_to_string(&record)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    // (serde_json, used by the test client, sorts the members.)
    assert_eq!(
        lines[0],
        r#"{"arguments":{},"execute":"qmp_capabilities","id":1}"#
    );
    assert_eq!(lines[1], request);
    assert_eq!(c.wait_backup_end()["status"], "done");
}

#[test]
fn missing_pbs_parameters_in_order() {
    let sim = Sim::start(&["--gen-disk", "drive-scsi0=4M"]);
    let mut c = sim.client();
    for missing in ["password", "backup-id", "backup-time"] {
        let mut a = pbs_args("100");
        a.as_object_mut().unwrap().remove(missing);
        assert_eq!(
            c.err("backup", a),
            (
                "GenericError".into(),
                format!("missing parameter '{missing}'")
            )
        );
    }
    // All three missing: the first one is reported.
    let mut a = pbs_args("100");
    for missing in ["backup-time", "backup-id", "password"] {
        a.as_object_mut().unwrap().remove(missing);
    }
    assert_eq!(c.err("backup", a).1, "missing parameter 'password'");
    // Device errors come first.
    let mut a = pbs_args("100");
    a["devlist"] = json!("drive-nope");
    a.as_object_mut().unwrap().remove("password");
    assert_eq!(c.err("backup", a).0, "DeviceNotFound");
}

#[test]
fn counters_and_dirty_bitmaps() {
    let dir = TempDir::new("pbs");
    let data = generated("drive-scsi0", "20M", &dir);
    let sim = Sim::start_in(dir, &["--gen-disk", "drive-scsi0=20M"]);
    let mut c = sim.client();
    let size = data.len() as u64;
    let info = |c: &mut common::Client| c.ok("query-pbs-bitmap-info", json!({}));

    // First backup with a bitmap: new, full.
    let mut args = pbs_args("100");
    args["use-dirty-bitmap"] = json!(true);
    c.ok("backup", args.clone());
    let st = c.wait_backup_end();
    let zero_all = zero_chunks(&data, |_| true);
    assert!(zero_all > 0);
    assert_eq!(st["status"], "done", "{st}");
    assert_eq!(st["total"], size);
    assert_eq!(st["dirty"], size);
    assert_eq!(st["transferred"], size);
    assert_eq!(st["zero-bytes"], zero_all);
    assert_eq!(st["reused"], zero_all);
    assert_eq!(st["backup-file"], "root@pam@pbs.example:store1");
    assert_eq!(
        info(&mut c),
        json!([{"drive": "drive-scsi0", "action": "new", "size": size, "dirty": size}])
    );

    // Second: used, only every eighth chunk is dirty (chunks 0 of 5 here).
    c.ok("backup", args.clone());
    let st = c.wait_backup_end();
    let dirty = CHUNK as u64;
    assert_eq!(
        info(&mut c),
        json!([{"drive": "drive-scsi0", "action": "used", "size": size, "dirty": dirty}])
    );
    let zero_dirty = zero_chunks(&data, |i| i % 8 == 0);
    assert_eq!(st["dirty"], dirty);
    assert_eq!(st["transferred"], dirty);
    assert_eq!(st["zero-bytes"], zero_dirty);
    assert_eq!(st["reused"], size - dirty + zero_dirty);

    // Another backup group: the bitmap does not match.
    let mut other = pbs_args("101");
    other["use-dirty-bitmap"] = json!(true);
    c.ok("backup", other);
    c.wait_backup_end();
    assert_eq!(info(&mut c)[0]["action"], "invalid");
    assert_eq!(info(&mut c)[0]["dirty"], size);

    // Without the flag an existing bitmap is dropped, then there is none.
    c.ok("backup", pbs_args("101"));
    c.wait_backup_end();
    assert_eq!(info(&mut c)[0]["action"], "not-used-removed");
    c.ok("backup", pbs_args("101"));
    c.wait_backup_end();
    assert_eq!(info(&mut c)[0]["action"], "not-used");
    assert_eq!(info(&mut c)[0]["dirty"], size);
}

#[test]
fn connect_delay_holds_the_reply() {
    let sim = Sim::start(&[
        "--gen-disk",
        "drive-scsi0=4M",
        "--pbs-connect-delay-ms",
        "200",
    ]);
    let mut c = sim.client();
    let begun = Instant::now();
    c.ok("backup", pbs_args("100"));
    assert!(begun.elapsed() >= Duration::from_millis(200));
    assert_eq!(c.wait_backup_end()["status"], "done");
}

#[test]
fn pbs_cancel_and_seed_era_record() {
    let sim = Sim::start(&[
        "--gen-disk",
        "drive-scsi0=64M",
        "--rate",
        "8M",
        "--seed-era",
    ]);
    let mut c = sim.client();
    c.ok("backup", pbs_args("100"));
    let st = c.wait_backup(|st| st["transferred"].as_u64().unwrap() > 0);
    assert_eq!(st["status"], "active");
    let keys: Vec<&String> = st.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "backup-file",
            "start-time",
            "status",
            "total",
            "transferred",
            "uuid",
            "zero-bytes"
        ]
    );
    c.ok("backup-cancel", json!({}));
    let st = c.ok("query-backup", json!({}));
    assert_eq!(st["status"], "error");
    assert_eq!(st["errmsg"], "backup canceled");
}

#[test]
fn pbs_finishing_phase_is_visible_and_cancelable() {
    let sim = Sim::start(&["--gen-disk", "drive-scsi0=8M", "--finishing-ms", "60000"]);
    let mut c = sim.client();
    c.ok("backup", pbs_args("100"));
    let st = c.wait_backup(|st| st["finishing"] == true);
    assert_eq!(st["status"], "active");
    assert_eq!(st["transferred"], st["total"]);
    assert!(st.get("end-time").is_none());
    c.ok("backup-cancel", json!({}));
    let st = c.ok("query-backup", json!({}));
    assert_eq!(st["status"], "error");
    assert_eq!(st["errmsg"], "backup canceled");
    assert_eq!(st["finishing"], false);
}

#[test]
fn pbs_finishing_then_done() {
    let sim = Sim::start(&["--gen-disk", "drive-scsi0=8M", "--finishing-ms", "300"]);
    let mut c = sim.client();
    c.ok("backup", pbs_args("100"));
    let mut seen_finishing = false;
    let st = c.wait_backup(|st| {
        seen_finishing |= st["finishing"] == true;
        st["status"] != "active"
    });
    assert!(seen_finishing, "finishing=true was visible for 300 ms");
    assert_eq!(st["status"], "done");
    assert_eq!(st["finishing"], false);
    assert_eq!(st["transferred"], st["total"]);
}

/// PBS progress comes in 4 MiB chunks (no 1 MiB start, no 2 MiB bursts).
#[test]
fn pbs_progress_steps_in_chunks() {
    let sim = Sim::start(&["--gen-disk", "drive-scsi0=32M", "--rate", "16M"]);
    let mut c = sim.client();
    c.ok("backup", pbs_args("100"));
    let mut values = Vec::new();
    let done = c.wait_backup(|st| {
        values.push(st["transferred"].as_u64().unwrap());
        st["status"] != "active"
    });
    assert_eq!(done["status"], "done");
    assert!(values.iter().all(|v| v % CHUNK as u64 == 0), "{values:?}");
    assert!(values.iter().any(|&v| v > 0 && v < 32 << 20), "{values:?}");
}
