//! VMA backups: the stream, the counters, cancellation, the setup errors.

mod common;

use std::io::Read;
use std::time::Duration;

use common::{generated, make_disk, vma_zero_bytes, PipeSink, Sim, TempDir};
use serde_json::{json, Value};

/// Simulator with a generated 8 MiB disk and a 5 MiB + 12345 bytes image file.
fn two_disk_sim(extra: &[&str]) -> (Sim, Vec<u8>, Vec<u8>) {
    let dir = TempDir::new("vma");
    let image = dir.join("virtio1.raw");
    make_disk(&image, 5 * 1024 * 1024 + 12345, 7);
    let file_data = std::fs::read(&image).unwrap();
    let gen_data = generated("drive-scsi0", "8M", &dir);
    let mut args = vec![
        "--gen-disk".to_string(),
        "drive-scsi0=8M".into(),
        "--disk".into(),
        format!("drive-virtio1={}", image.display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (Sim::start_in(dir, &args), gen_data, file_data)
}

/// The device names of an archive, in dev id order.
fn device_names(info: &vma::ArchiveInfo) -> Vec<&str> {
    info.header
        .devices
        .iter()
        .map(|d| d.name.as_str())
        .collect()
}

#[test]
fn vma_backup_into_a_pipe_extracts_byte_for_byte() {
    let (sim, gen_data, file_data) = two_disk_sim(&[]);
    let conf = sim.dir.join("qemu-server.conf");
    std::fs::write(&conf, b"memory: 512\nscsi0: local:vm-100-disk-0\n").unwrap();
    let fw = sim.dir.join("100.fw");
    std::fs::write(&fw, b"[OPTIONS]\nenable: 1\n").unwrap();

    let mut c = sim.client();
    let (r, w) = nix::unistd::pipe().unwrap();
    let out = sim.dir.join("extracted");
    let out2 = out.clone();
    let extractor = std::thread::spawn(move || vma::extract_to_dir(std::fs::File::from(r), out2));
    c.getfd("backup", &w);
    drop(w);
    let reply = c.ok(
        "backup",
        json!({
            "backup-file": "/dev/fdname/backup",
            "devlist": "drive-scsi0,drive-virtio1",
            "config-file": conf.to_str().unwrap(),
            "firewall-file": fw.to_str().unwrap(),
            "speed": 0,
        }),
    );
    let uuid = reply["UUID"].as_str().unwrap().to_string();
    assert_eq!(uuid.len(), 36);
    assert_eq!(uuid, uuid.to_lowercase());
    assert_eq!(reply.as_object().unwrap().len(), 1);

    let info = extractor
        .join()
        .unwrap()
        .expect("stream verifies and extracts");
    assert_eq!(info.header.uuid_string(), uuid);
    assert_eq!(device_names(&info), ["drive-scsi0", "drive-virtio1"]);
    let configs: Vec<&str> = info
        .header
        .configs
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(configs, ["qemu-server.conf", "100.fw"]);
    assert_eq!(
        std::fs::read(out.join("qemu-server.conf")).unwrap(),
        std::fs::read(&conf).unwrap()
    );
    assert_eq!(
        std::fs::read(out.join("disk-drive-scsi0.raw")).unwrap(),
        gen_data
    );
    assert_eq!(
        std::fs::read(out.join("disk-drive-virtio1.raw")).unwrap(),
        file_data
    );

    let st = c.wait_backup_end();
    let total = (gen_data.len() + file_data.len()) as u64;
    let zero = vma_zero_bytes(&gen_data) + vma_zero_bytes(&file_data);
    assert_eq!(st["status"], "done", "{st}");
    assert_eq!(st["total"], total);
    assert_eq!(st["transferred"], total);
    assert_eq!(st["dirty"], total);
    assert_eq!(st["zero-bytes"], zero);
    assert!(zero > 0 && zero < total);
    assert_eq!(st["reused"], 0);
    assert_eq!(st["finishing"], false);
    assert_eq!(st["uuid"], uuid.as_str());
    assert_eq!(st["backup-file"], "/dev/fdname/backup");
    assert!(st.get("errmsg").is_none());
    assert!(st["end-time"].as_i64().unwrap() >= st["start-time"].as_i64().unwrap());
    assert_eq!(c.ok("query-pbs-bitmap-info", json!({})), json!([]));
}

#[test]
fn absent_devlist_means_all_disks_and_a_path_target_works() {
    let (sim, gen_data, file_data) = two_disk_sim(&[]);
    let mut c = sim.client();
    let target = sim.dir.join("backup.vma");
    c.ok("backup", json!({"backup-file": target.to_str().unwrap()}));
    let st = c.wait_backup_end();
    assert_eq!(st["status"], "done", "{st}");
    let info = vma::verify(std::fs::File::open(&target).unwrap()).unwrap();
    assert_eq!(info.header.devices.len(), 2);
    assert_eq!(
        info.header.devices[1].size as usize,
        file_data.len(),
        "sizes as given"
    );
    assert_eq!(info.header.devices[0].size as usize, gen_data.len());
    // An existing file is not overwritten.
    let (class, desc) = c.err("backup", json!({"backup-file": target.to_str().unwrap()}));
    assert_eq!(class, "GenericError");
    assert_eq!(
        desc,
        format!("can't open file {} - File exists\n", target.display())
    );
}

#[test]
fn cancel_mid_backup_ends_the_stream_and_reports_canceled() {
    let (sim, _, _) = two_disk_sim(&["--rate", "4M"]);
    let mut c = sim.client();
    let (sink, _) = c.start_vma_backup();
    let st = c.wait_backup(|st| st["transferred"].as_u64().unwrap() > 0);
    assert_eq!(st["status"], "active");
    assert!(st.get("end-time").is_none());
    assert_eq!(c.ok("backup-cancel", json!({})), json!({}));
    // backup-cancel returns once the job is torn down.
    let st = c.ok("query-backup", json!({}));
    assert_eq!(st["status"], "error");
    assert_eq!(st["errmsg"], "backup canceled");
    assert!(st["end-time"].is_i64());
    assert!(st["transferred"].as_u64().unwrap() < st["total"].as_u64().unwrap());
    // The fd was closed: the reader sees EOF of a truncated archive.
    let data = sink.finish();
    assert!(vma::verify(&data[..]).is_err());
    // A new backup may start now.
    let sink = c.backup_pipe();
    c.backup_done(sink, json!({"devlist": "drive-virtio1"}));
}

#[test]
fn cancel_after_done_flips_to_error() {
    let (sim, _, _) = two_disk_sim(&[]);
    let mut c = sim.client();
    // Before any backup: nothing to flip.
    c.ok("backup-cancel", json!({}));
    assert_eq!(c.ok("query-backup", json!({})), json!({"finishing": false}));
    let (sink, _) = c.start_vma_backup();
    let done = c.wait_backup_end();
    assert_eq!(done["status"], "done");
    c.ok("backup-cancel", json!({}));
    let st = c.ok("query-backup", json!({}));
    assert_eq!(st["status"], "error");
    assert_eq!(st["errmsg"], "backup canceled");
    assert_eq!(st["end-time"], done["end-time"]);
    assert_eq!(st["transferred"], done["transferred"]);
    vma::verify(&sink.finish()[..]).unwrap();
}

#[test]
fn previous_backup_not_finished_in_both_eras() {
    for (flags, text) in [
        (&[][..], "previous backup for target 'Proxmox' not finished"),
        (&["--seed-era"][..], "previous backup not finished"),
    ] {
        let mut args = vec!["--rate", "1M"];
        args.extend_from_slice(flags);
        let (sim, _, _) = two_disk_sim(&args);
        let mut c = sim.client();
        let (sink, _) = c.start_vma_backup();
        let sink2 = c.backup_pipe();
        assert_eq!(
            c.err("backup", json!({"backup-file": "/dev/fdname/backup"})),
            ("GenericError".into(), text.into())
        );
        let st = c.ok("query-backup", json!({}));
        assert_eq!(st["status"], "active");
        if flags.is_empty() {
            assert_eq!(st["finishing"], false);
        } else {
            for gone in ["finishing", "dirty", "reused"] {
                assert!(st.get(gone).is_none(), "{gone} in seed era: {st}");
            }
        }
        c.ok("backup-cancel", json!({}));
        // The refused backup did not consume its fd: closefd finds it.
        c.ok("closefd", json!({"fdname": "backup"}));
        drop(sink2.finish());
        drop(sink.finish());
    }
}

#[test]
fn setup_errors_in_qemus_order() {
    let (sim, _, _) = two_disk_sim(&[]);
    let mut c = sim.client();
    let not_found = |d: &str| ("DeviceNotFound".to_string(), d.to_string());
    let generic = |d: &str| ("GenericError".to_string(), d.to_string());
    for (args, want) in [
        (
            json!({"backup-file": "/dev/fdname/backup", "devlist": "drive-scsi0;drive-ide9"}),
            not_found("Device 'drive-ide9' not found"),
        ),
        (
            json!({"backup-file": "/dev/fdname/backup", "devlist": ""}),
            generic("empty device list"),
        ),
        (
            json!({"backup-file": "/dev/fdname/backup", "devlist": "drive-scsi0,"}),
            not_found("Device '' not found"),
        ),
        (
            json!({"backup-file": "/dev/fdname/backup", "fleecing": true}),
            not_found("Device 'drive-scsi0-fleecing' not found"),
        ),
        (
            json!({"backup-file": "/dev/fdname/backup"}),
            generic("File descriptor named 'backup' has not been found"),
        ),
    ] {
        assert_eq!(c.err("backup", args.clone()), want, "{args}");
    }
    // The config file is read after the target is set up: the fd is consumed even so.
    let sink = c.backup_pipe();
    assert_eq!(
        c.err(
            "backup",
            json!({"backup-file": "/dev/fdname/backup", "config-file": "/nonexistent/qemu-server.conf"})
        ),
        generic("unable to read file '/nonexistent/qemu-server.conf'")
    );
    assert_eq!(
        c.err("closefd", json!({"fdname": "backup"})),
        generic("File descriptor named 'backup' not found")
    );
    assert!(sink.finish().is_empty(), "closed without data");
    // A path target created for a failed start is removed again.
    let target = sim.dir.join("failed.vma");
    c.err(
        "backup",
        json!({"backup-file": target.to_str().unwrap(), "firewall-file": "/nonexistent/x.fw"}),
    );
    assert!(!target.exists());
    assert_eq!(c.ok("query-backup", json!({})), json!({"finishing": false}));
}

#[test]
fn fleecing_companions_are_checked_and_excluded_from_all_disks() {
    let dir = TempDir::new("fleece");
    let sim = Sim::start_in(
        dir,
        &[
            "--gen-disk",
            "drive-scsi0=4M",
            "--gen-disk",
            "drive-scsi0-fleecing=4M",
            "--gen-disk",
            "drive-efidisk0=64K",
            "--gen-disk",
            "drive-scsi1=1M",
            "--gen-disk",
            "drive-scsi1-fleecing=2M",
        ],
    );
    let mut c = sim.client();
    assert_eq!(
        c.err(
            "backup",
            json!({"backup-file": "/dev/fdname/x", "fleecing": true})
        ),
        (
            "GenericError".into(),
            "Size mismatch for 'drive-scsi1-fleecing' - sector count 4096 != 2048".into()
        )
    );
    let sink = c.backup_pipe();
    c.backup_done(
        sink,
        json!({"fleecing": true, "devlist": "drive-scsi0,drive-efidisk0"}),
    );
    // Without devlist the fleecing images are not backed up.
    let (sink, _) = c.start_vma_backup();
    let st = c.wait_backup_end();
    assert_eq!(st["total"], (4 << 20) + 65536 + (1 << 20));
    let info = vma::verify(&sink.finish()[..]).unwrap();
    assert_eq!(
        device_names(&info),
        ["drive-scsi0", "drive-efidisk0", "drive-scsi1"]
    );
}

#[test]
fn a_dead_reader_is_a_broken_pipe() {
    let (sim, _, _) = two_disk_sim(&[]);
    let mut c = sim.client();
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    c.getfd("backup", &w);
    drop(w);
    c.ok("backup", json!({"backup-file": "/dev/fdname/backup"}));
    let st = c.wait_backup_end();
    assert_eq!(st["status"], "error");
    assert_eq!(st["errmsg"], "vma_queue_write: write error - Broken pipe");
    // The simulator is alive and well.
    assert_eq!(c.ok("query-status", json!({}))["running"], true);
}

#[test]
fn fd_is_left_nonblocking_like_qemu_does() {
    let (sim, _, _) = two_disk_sim(&["--rate", "1M"]);
    let mut c = sim.client();
    let sink = c.backup_pipe();
    let flags = || nix::fcntl::fcntl(sink.fd(), nix::fcntl::FcntlArg::F_GETFL).unwrap();
    assert_eq!(flags() & libc::O_NONBLOCK, 0);
    c.ok("backup", json!({"backup-file": "/dev/fdname/backup"}));
    assert_ne!(flags() & libc::O_NONBLOCK, 0, "shared file description");
    c.ok("backup-cancel", json!({}));
    drop(sink.finish());
}

/// Without any flag, as QEMU does: job id = drive name.
#[test]
fn events_follow_the_jobs() {
    let (sim, _, _) = two_disk_sim(&[]);
    let mut c = sim.client();
    let (sink, _) = c.start_vma_backup();
    // The jobs are created before `backup` replies.
    let created: Vec<&Value> = c.events.iter().take(2).map(|e| &e["data"]).collect();
    assert_eq!(
        created,
        [
            &json!({"id": "drive-scsi0", "status": "created"}),
            &json!({"id": "drive-virtio1", "status": "created"})
        ]
    );
    c.wait_backup_end();
    drop(sink.finish());
    let seen: Vec<(String, String)> = c
        .events
        .iter()
        .filter(|e| e["event"] == "JOB_STATUS_CHANGE")
        .map(|e| {
            (
                e["data"]["id"].as_str().unwrap().to_string(),
                e["data"]["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("drive-scsi0", "created"),
        ("drive-virtio1", "created"),
        ("drive-scsi0", "running"),
        ("drive-scsi0", "waiting"),
        ("drive-virtio1", "running"),
        ("drive-virtio1", "waiting"),
        ("drive-scsi0", "pending"),
        ("drive-virtio1", "pending"),
        ("drive-scsi0", "concluded"),
        ("drive-scsi0", "null"),
        ("drive-virtio1", "concluded"),
        ("drive-virtio1", "null"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(seen, want);
    let completed: Vec<&Value> = c
        .events
        .iter()
        .filter(|e| e["event"] == "BLOCK_JOB_COMPLETED")
        .collect();
    let devices: Vec<&Value> = completed.iter().map(|e| &e["data"]["device"]).collect();
    assert_eq!(devices, ["drive-scsi0", "drive-virtio1"]);
    for e in &completed {
        assert_eq!(e["data"]["type"], "backup", "{e}");
        assert_eq!(e["data"]["len"], e["data"]["offset"], "{e}");
        assert!(e["data"].get("error").is_none(), "{e}");
    }
    assert_eq!(completed[0]["data"]["len"], 8 << 20);
    assert!(
        !c.events
            .iter()
            .any(|e| e["event"] == "SIM_TICK" || e["event"] == "BLOCK_JOB_CANCELLED"),
        "{:?}",
        c.events
    );
}

#[test]
fn cancel_sends_block_job_cancelled_for_every_job() {
    let (sim, _, _) = two_disk_sim(&["--rate", "4M"]);
    let mut c = sim.client();
    let (sink, _) = c.start_vma_backup();
    c.ok("backup-cancel", json!({}));
    drop(sink.finish());
    // backup-cancel replies after the jobs are torn down: their events came first.
    let cancelled: Vec<&Value> = c
        .events
        .iter()
        .filter(|e| e["event"] == "BLOCK_JOB_CANCELLED")
        .map(|e| &e["data"]["device"])
        .collect();
    assert_eq!(
        cancelled,
        ["drive-scsi0", "drive-virtio1"],
        "{:?}",
        c.events
    );
    assert!(!c.events.iter().any(|e| e["event"] == "BLOCK_JOB_COMPLETED"));
    let last: Vec<(&Value, &Value)> = c
        .events
        .iter()
        .filter(|e| e["event"] == "JOB_STATUS_CHANGE")
        .map(|e| (&e["data"]["id"], &e["data"]["status"]))
        .rev()
        .take(2)
        .collect();
    assert_eq!(
        last,
        [
            (&json!("drive-virtio1"), &json!("null")),
            (&json!("drive-virtio1"), &json!("concluded"))
        ]
    );
}

/// pve-qemu 10.0: a VMA job never reports `finishing: true`; while the writer waits in a
/// full pipe it is active with everything counted. `--finishing-ms` is for PBS only.
#[test]
fn vma_never_reports_finishing() {
    // 2 MiB: 32 clusters, fewer than one extent (58), so all of them are booked before
    // the writer writes anything, and the stream is far more than the pipe holds.
    let sim = Sim::start(&["--gen-disk", "drive-scsi0=2M", "--finishing-ms", "60000"]);
    let mut c = sim.client();
    let (r, w) = nix::unistd::pipe().unwrap();
    c.getfd("backup", &w);
    drop(w);
    c.ok("backup", json!({"backup-file": "/dev/fdname/backup"}));
    let mut replies = Vec::new();
    // Nobody reads the pipe: the job must wait with transferred == total.
    let waiting = c.wait_backup(|st| {
        replies.push(st.clone());
        st["transferred"] == st["total"]
    });
    assert_eq!(waiting["status"], "active", "{waiting}");
    assert_eq!(waiting["finishing"], false, "{waiting}");
    assert!(waiting.get("end-time").is_none());
    std::thread::sleep(Duration::from_millis(100));
    let still = c.ok("query-backup", json!({}));
    assert_eq!(still["status"], "active", "{still}");
    assert_eq!(still["finishing"], false, "{still}");
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::fs::File::from(r).read_to_end(&mut v).unwrap();
        v
    });
    loop {
        let st = c.ok("query-backup", json!({}));
        replies.push(st.clone());
        if st["status"] != "active" {
            break;
        }
    }
    vma::verify(&reader.join().unwrap()[..]).unwrap();
    let last = replies.last().unwrap();
    assert_eq!(last["status"], "done", "{last}");
    assert_eq!(last["transferred"], last["total"]);
    assert!(
        replies.iter().all(|st| st["finishing"] == false),
        "{replies:?}"
    );
}

#[test]
fn quick_polls_of_a_vma_backup_never_see_finishing() {
    let (sim, _, _) = two_disk_sim(&["--rate", "64M", "--finishing-ms", "500"]);
    let mut c = sim.client();
    let (sink, _) = c.start_vma_backup();
    let replies = c.replies_to_end(Duration::ZERO);
    let done = replies.last().unwrap();
    vma::verify(&sink.finish()[..]).unwrap();
    assert_eq!(done["status"], "done", "{done}");
    assert!(replies.len() > 10, "polled quickly: {}", replies.len());
    assert!(
        replies.iter().all(|st| st["finishing"] == false),
        "{replies:?}"
    );
}

/// pve-qemu 10.0.2 segfaults on a devlist that names a device twice (job creation fails
/// for the second, the cleanup calls job_unref on NULL); the simulator dies the same way.
#[test]
fn duplicated_devlist_kills_the_simulator_by_sigsegv() {
    use std::os::unix::process::ExitStatusExt;
    for devlist in [
        "drive-scsi0;drive-scsi0",
        "drive-virtio1,drive-scsi0:drive-virtio1",
    ] {
        let (mut sim, _, _) = two_disk_sim(&[]);
        let mut c = sim.client();
        let sink = c.backup_pipe();
        let req = json!({"execute": "backup", "arguments":
            {"backup-file": "/dev/fdname/backup", "devlist": devlist}, "id": 1});
        c.send(req.to_string().as_bytes());
        let status = sim.wait();
        assert_eq!(
            status.signal(),
            Some(libc::SIGSEGV),
            "{devlist}: {status:?}"
        );
        assert!(!status.core_dumped(), "{devlist}: no core file");
        let mut rest = Vec::new();
        c.stream.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "{devlist}: no reply: {rest:?}");
        assert!(sink.finish().is_empty(), "{devlist}: nothing written");
    }
}

#[test]
fn duplicates_behind_an_unknown_or_empty_name_are_device_not_found() {
    let (sim, _, _) = two_disk_sim(&[]);
    let mut c = sim.client();
    let sink = c.backup_pipe();
    for (devlist, name) in [
        ("drive-scsi0;drive-scsi0;drive-ide9", "drive-ide9"),
        ("drive-scsi0,,drive-scsi0", ""),
        ("drive-scsi0;;", ""),
    ] {
        assert_eq!(
            c.err(
                "backup",
                json!({"backup-file": "/dev/fdname/backup", "devlist": devlist})
            ),
            (
                "DeviceNotFound".to_string(),
                format!("Device '{name}' not found")
            ),
            "{devlist}"
        );
    }
    // Still alive, and the fd is still there for a good backup.
    c.backup_done(sink, json!({"devlist": "drive-scsi0"}));
}

#[test]
fn client_gone_mid_backup_does_not_stop_it() {
    let (sim, _, _) = two_disk_sim(&[]);
    let sink = PipeSink::new();
    {
        let mut c = sim.client();
        c.getfd("backup", sink.fd());
        let req = json!({"execute": "backup", "arguments": {"backup-file": "/dev/fdname/backup"}});
        c.send(req.to_string().as_bytes());
        // Leave without reading the reply.
    }
    let data = sink.finish();
    vma::verify(&data[..]).unwrap();
    let mut c = sim.client();
    assert_eq!(c.wait_backup_end()["status"], "done");
    let mut buf = Vec::new();
    std::fs::File::open(sim.dir.join("virtio1.raw"))
        .unwrap()
        .read_to_end(&mut buf)
        .unwrap();
    assert_eq!(
        c.ok("query-backup", json!({}))["total"],
        (8 << 20) + buf.len() as u64
    );
}
