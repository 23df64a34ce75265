//! Backups through the library against `pve-qmp-sim`: VMA streams that reproduce their
//! source disks, PBS arguments on the wire, cancel, the status loop and every fault flag.

mod common;

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::{make_disk, sha256_file, Sim};
use vzdump_qemu::backup::{self, PbsParams, Secret, VmaParams};
use vzdump_qemu::error::Cause;
use vzdump_qemu::log::Level;
use vzdump_qemu::progress::Poller;
use vzdump_qemu::progress::Style;
use vzdump_qemu::qmp::{Options, Peer};
use vzdump_qemu::Error;

use common::pbs_job;

/// A pipe whose read end a thread drains into `path`, as a compressor would.
fn pipe_to_file(path: &Path) -> (OwnedFd, JoinHandle<u64>) {
    let (r, w) = nix::unistd::pipe().unwrap();
    let mut out = File::create(path).unwrap();
    let reader = std::thread::spawn(move || {
        let mut r = File::from(r);
        std::io::copy(&mut r, &mut out).unwrap()
    });
    (w, reader)
}

fn peer(sim: &Sim) -> Peer {
    Peer::path(&sim.socket)
}

type Outcome = Result<vzdump_qemu::progress::Completed, Error>;

/// Runs `poller` (never cancelled) until it returns, adding the lines it logs to `lines`.
fn run_collecting(poller: &mut Poller, lines: &mut Vec<String>) -> Outcome {
    poller.run(
        &mut |_l: Level, s: &str| lines.push(s.to_string()),
        &mut || false,
    )
}

/// Runs the status loop to its end, collecting lines.
fn poll(peer: &Peer, uuid: &str, style: Style) -> (Outcome, Vec<String>) {
    let mut lines = Vec::new();
    let mut poller = Poller::new(peer, &Options::default(), uuid, style, None);
    let outcome = run_collecting(&mut poller, &mut lines);
    (outcome, lines)
}

/// Starts a VMA backup with `params` on `peer`, into `fd`.
fn start_vma(peer: &Peer, fd: BorrowedFd<'_>, params: &VmaParams) -> vzdump_qemu::Result<String> {
    backup::start_vma(peer, &Options::default(), fd, params, None)
}

/// Starts a VMA backup on `peer` into a pipe that a thread drains into `archive`.
fn start_on_peer_to_file(
    peer: &Peer,
    archive: &Path,
    params: &VmaParams,
) -> (String, JoinHandle<u64>) {
    let (w, reader) = pipe_to_file(archive);
    let uuid = start_vma(peer, w.as_fd(), params).unwrap();
    drop(w);
    (uuid, reader)
}

/// Starts a VMA backup on the simulator into a pipe that a thread drains into `archive`.
fn start_to_file(sim: &Sim, archive: &Path, params: &VmaParams) -> (String, JoinHandle<u64>) {
    start_on_peer_to_file(&peer(sim), archive, params)
}

/// A VMA backup with default parameters running on `sim`, streamed through a pipe into
/// `<dir>/backup.vma`.
struct Backup {
    sim: Sim,
    peer: Peer,
    uuid: String,
    /// The thread draining the pipe: it ends at EOF with the byte count.
    reader: JoinHandle<u64>,
    dir: testkit::TempDir,
}

impl Backup {
    /// On a simulator started with `args`.
    fn start(args: &[&str]) -> Backup {
        Self::on(Sim::start(args), testkit::TempDir::new("backup"))
    }

    /// On `sim`, into a file in `dir`.
    fn on(sim: Sim, dir: testkit::TempDir) -> Backup {
        let (uuid, reader) = start_to_file(&sim, &dir.join("backup.vma"), &VmaParams::default());
        Backup {
            peer: peer(&sim),
            sim,
            uuid,
            reader,
            dir,
        }
    }

    /// The seed's status loop for the job.
    fn seed_poller(&self) -> Poller {
        Poller::new(
            &self.peer,
            &Options::default(),
            &self.uuid,
            Style::Seed,
            None,
        )
    }
}

/// The simulator with `args`, recording every request it gets into a file in `dir`.
fn sim_recording(dir: &testkit::TempDir, args: &[&str]) -> (Sim, PathBuf) {
    let record = dir.join("record.jsonl");
    let record_arg = record.display().to_string();
    let mut all = args.to_vec();
    all.extend(["--record", record_arg.as_str()]);
    (Sim::start(&all), record)
}

#[test]
fn vma_backup_reproduces_a_disk_with_holes() {
    let sim_dir = testkit::TempDir::new("disks");
    let disk = sim_dir.path().join("disk0.raw");
    make_disk(&disk, 24 * 1024 * 1024 + 12345, 7);
    let conf = sim_dir.path().join("qemu-server.conf");
    std::fs::write(&conf, "name: test\nscsi0: local:vm-100-disk-0,size=24M\n").unwrap();
    let sim = Sim::start(&["--disk", &format!("drive-scsi0={}", disk.display())]);
    let archive = sim_dir.path().join("backup.vma");
    let params = VmaParams {
        config_file: Some(conf.display().to_string()),
        devlist: Some("drive-scsi0".into()),
        ..VmaParams::default()
    };
    let (uuid, reader) = start_to_file(&sim, &archive, &params);
    let (outcome, lines) = poll(&peer(&sim), &uuid, Style::Seed);
    let done = outcome.unwrap();
    assert_eq!(done.progress.transferred, done.progress.total);
    assert!(
        lines.last().unwrap().starts_with("transferred 25 MB in "),
        "{lines:?}"
    );
    reader.join().unwrap();

    let out = sim_dir.path().join("extract");
    let info = vma::extract_to_dir(File::open(&archive).unwrap(), &out).unwrap();
    let hex = info.header.uuid_hex();
    assert_eq!(hex, uuid.replace('-', ""), "archive uuid is the job uuid");
    assert_eq!(info.header.configs[0].name, "qemu-server.conf");
    assert_eq!(
        sha256_file(&out.join("disk-drive-scsi0.raw")),
        sha256_file(&disk),
        "extracted disk equals the source"
    );
}

#[test]
fn vma_backup_of_two_disks_through_zstd() {
    let dir = testkit::TempDir::new("two");
    let (d0, d1) = (dir.path().join("a.raw"), dir.path().join("b.raw"));
    make_disk(&d0, 9 * 1024 * 1024, 1);
    make_disk(&d1, 5 * 1024 * 1024 + 4096 * 3 + 17, 2);
    let sim = Sim::start(&[
        "--disk",
        &format!("drive-scsi0={}", d0.display()),
        "--disk",
        &format!("drive-virtio1={}", d1.display()),
    ]);
    let archive = dir.path().join("b.vma.zst");
    let out = File::create(&archive).unwrap();
    let spec = vzdump_qemu::compressor::CommandSpec::Line("zstd -q --threads=1".into());
    let (mut zstd, w) =
        vzdump_qemu::compressor::Compressor::spawn(&spec, out.as_fd(), &Default::default())
            .unwrap();
    let uuid = start_vma(&peer(&sim), w.as_fd(), &VmaParams::default()).unwrap();
    drop(w);
    let (outcome, _) = poll(&peer(&sim), &uuid, Style::Current);
    outcome.unwrap();
    zstd.wait(Duration::from_secs(60)).unwrap();

    let raw = dir.path().join("b.vma");
    let status = std::process::Command::new("zstd")
        .args(["-q", "-d", "-f", "-o"])
        .arg(&raw)
        .arg(&archive)
        .status()
        .unwrap();
    assert!(status.success());
    let ex = dir.path().join("x");
    let info = vma::extract_to_dir(File::open(&raw).unwrap(), &ex).unwrap();
    assert_eq!(info.header.devices.len(), 2);
    assert_eq!(
        sha256_file(&ex.join("disk-drive-scsi0.raw")),
        sha256_file(&d0)
    );
    assert_eq!(
        sha256_file(&ex.join("disk-drive-virtio1.raw")),
        sha256_file(&d1)
    );
}

#[test]
fn pbs_start_sends_exactly_the_arguments_and_hides_the_password() {
    let dir = testkit::TempDir::new("pbs");
    let (sim, record) = sim_recording(&dir, &["--gen-disk", "drive-scsi0=64M"]);
    let params = PbsParams {
        repository: "backup@pbs@pbs.example:8007:store1".into(),
        backup_id: "100".into(),
        backup_time: 1_764_300_000,
        password: Some(Secret::new("pbs-pass-XYZ")),
        fingerprint: Some("aa:bb".into()),
        config_file: None,
        firewall_file: None,
        devlist: Some("drive-scsi0".into()),
        keyfile: Some("/etc/pve/priv/storage/pbs.enc".into()),
        key_password: Some(Secret::new("key-pass-XYZ")),
        master_keyfile: Some("/etc/pve/priv/storage/pbs.master.pem".into()),
        encrypt: Some(true),
        compress: Some(false),
        backup_ns: Some("ns1".into()),
        use_dirty_bitmap: Some(true),
        max_workers: Some(4),
        fleecing: Some(false),
        speed: Some(1 << 30),
    };
    let uuid = backup::start_pbs(&peer(&sim), &Options::default(), &params, None).unwrap();
    let (outcome, lines) = poll(&peer(&sim), &uuid, Style::Current);
    outcome.unwrap();
    let requests: Vec<Value> = std::fs::read_to_string(&record)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let start = requests.iter().find(|r| r["execute"] == "backup").unwrap();
    assert_eq!(
        start["arguments"],
        json!({
            "format": "pbs", "backup-file": "backup@pbs@pbs.example:8007:store1",
            "backup-id": "100", "backup-time": 1_764_300_000i64, "password": "pbs-pass-XYZ",
            "fingerprint": "aa:bb", "devlist": "drive-scsi0",
            "keyfile": "/etc/pve/priv/storage/pbs.enc", "key-password": "key-pass-XYZ",
            "master-keyfile": "/etc/pve/priv/storage/pbs.master.pem", "backup-ns": "ns1",
            "encrypt": true, "compress": false, "use-dirty-bitmap": true, "fleecing": false,
            "max-workers": 4, "speed": 1_073_741_824i64
        })
    );
    let all_text = format!("{lines:?} {params:?}");
    assert!(!all_text.contains("pass-XYZ"), "secret leaked: {all_text}");

    // An error reply for a start must not carry the password either.
    let bad = PbsParams {
        devlist: Some("drive-nope".into()),
        ..params.clone()
    };
    let err = backup::start_pbs(&peer(&sim), &Options::default(), &bad, None).unwrap_err();
    assert_eq!(err.desc(), "Device 'drive-nope' not found");
    assert!(!format!("{err} {err:?}").contains("pass-XYZ"));
}

#[test]
fn pbs_start_waits_for_a_slow_server_connection() {
    let sim = Sim::start(&[
        "--gen-disk",
        "drive-scsi0=16M",
        "--pbs-connect-delay-ms",
        "1500",
    ]);
    let params = pbs_job("root@pam@h:s", "1", 1, Some("x"));
    // Longer than qemu-server's 5 s default would allow if it were, say, 6 s: PBS start
    // uses its own 125 s timeout, so a slow connect still succeeds.
    assert_eq!(
        backup::start_pbs(&peer(&sim), &Options::default(), &params, None)
            .unwrap()
            .len(),
        36
    );
    // With a budget shorter than the connect delay the start times out, outcome unknown.
    let err = backup::start_pbs(
        &peer(&sim),
        &Options::default(),
        &params,
        Some(Duration::from_millis(300)),
    )
    .unwrap_err();
    assert!(
        err.is_timeout() || matches!(err, Error::Command { .. }),
        "{err}"
    );
}

#[test]
fn cancel_during_backup_and_the_quirk_after_done() {
    let job = Backup::start(&["--gen-disk", "drive-scsi0=64M", "--rate", "8M"]);
    std::thread::sleep(Duration::from_millis(300));
    backup::cancel(&job.peer, &Options::default()).unwrap();
    job.reader.join().unwrap(); // the stream was closed: the reader saw EOF
    let (outcome, lines) = poll(&job.peer, &job.uuid, Style::Seed);
    let err = outcome.unwrap_err();
    assert_eq!(err.to_string(), "backup canceled");
    assert!(
        lines.last().unwrap().starts_with("status: "),
        "final line printed: {lines:?}"
    );

    // A finished job turns into error/backup canceled when cancelled (QEMU's quirk).
    let job = Backup::start(&["--gen-disk", "drive-scsi0=4M"]);
    poll(&job.peer, &job.uuid, Style::Seed).0.unwrap();
    job.reader.join().unwrap();
    backup::cancel(&job.peer, &Options::default()).unwrap();
    let status = vzdump_qemu::progress::query(&job.peer, &Options::default()).unwrap();
    assert_eq!(status.status.as_deref(), Some("error"));
    assert_eq!(status.errmsg.as_deref(), Some("backup canceled"));
}

#[test]
fn second_backup_while_one_runs_gives_qemus_error() {
    let job = Backup::start(&["--gen-disk", "drive-scsi0=64M", "--rate", "4M"]);
    let (w, _r2) = pipe_to_file(&job.dir.join("2.vma"));
    let err = start_vma(&job.peer, w.as_fd(), &VmaParams::default()).unwrap_err();
    assert_eq!(
        err.desc(),
        "previous backup for target 'Proxmox' not finished"
    );
    backup::cancel(&job.peer, &Options::default()).unwrap();
}

/// Starts a VMA backup of a generated disk under `faults` and runs the seed loop.
fn faulty_run(faults: &[&str], style: Style) -> (Outcome, Vec<String>) {
    let mut args = vec!["--gen-disk", "drive-scsi0=32M", "--rate", "32M"];
    args.extend_from_slice(faults);
    let job = Backup::start(&args);
    let result = poll(&job.peer, &job.uuid, style);
    drop(job.sim);
    let _ = job.reader.join();
    result
}

#[test]
fn fault_error_status_ends_with_errmsg() {
    let (outcome, _) = faulty_run(&["--fault-error-at", "30"], Style::Seed);
    assert_eq!(
        outcome.unwrap_err().to_string(),
        "job failed with err -5 - Input/output error"
    );
    let (outcome, _) = faulty_run(&["--fault-write-error-at", "40"], Style::Current);
    assert_eq!(
        outcome.unwrap_err().to_string(),
        "vma_queue_write: write error - Input/output error"
    );
}

#[test]
fn fault_wrong_uuid_and_count_mismatch() {
    let (outcome, lines) = faulty_run(&["--fault-wrong-uuid"], Style::Seed);
    assert_eq!(outcome.unwrap_err().to_string(), "got unexpected uuid");
    assert!(
        lines.is_empty(),
        "uuid is checked before any line: {lines:?}"
    );
    let (outcome, lines) = faulty_run(&["--fault-count-mismatch"], Style::Seed);
    assert_eq!(
        outcome.unwrap_err().to_string(),
        "got wrong number of transfered bytes (33554432 != 33488896)"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("status: 99% (33488896/33554432)"),
        "{lines:?}"
    );
    // Today's qemu-server accepts the mismatch.
    let (outcome, _) = faulty_run(&["--fault-count-mismatch"], Style::Current);
    outcome.unwrap();
}

#[test]
fn fault_qemu_dies_mid_backup_ends_the_loop_promptly() {
    let (outcome, _) = faulty_run(&["--fault-die-at", "50"], Style::Seed);
    let err = outcome.unwrap_err();
    // A connect or connection error, not a Timeout: the loop did not sit out the
    // 10-minute query-backup timeout, and it did not spin (it returned). The texts are
    // proxmox/qemu-server src/PVE/QMPClient.pm's (`$open_connection`, `mux_close`).
    let cause = err.command_error().map(|c| c.cause.clone());
    assert!(
        matches!(cause, Some(Cause::Connect { .. } | Cause::Closed { .. })),
        "{err}"
    );
    let text = err.to_string();
    let closed = text.ends_with("command 'query-backup' failed - client closed connection");
    let refused = text
        .contains("command 'query-backup' failed - unable to connect to qmp socket '")
        && text.ends_with("' - Connection refused");
    assert!(closed || refused, "{text}");
}

#[test]
fn qemu_dying_mid_backup_reads_as_in_qemu_server_for_a_vm() {
    let sim = Sim::start_vmid(
        100,
        &[
            "--gen-disk",
            "drive-scsi0=32M",
            "--rate",
            "16M",
            "--fault-die-at",
            "50",
        ],
    );
    let peer = Peer::vmid_in(100, sim.dir.path());
    let dir = testkit::TempDir::new("die");
    let (uuid, reader) =
        start_on_peer_to_file(&peer, &dir.path().join("d.vma"), &VmaParams::default());
    let (outcome, _) = poll(&peer, &uuid, Style::Seed);
    let _ = reader.join();
    let text = outcome.unwrap_err().to_string();
    // Died between two queries: its pid file is stale (proxmox/qemu-server
    // src/PVE/QemuServer/Monitor.pm `qmp_cmd`); died during one: the connection closed
    // (src/PVE/QMPClient.pm `mux_close`).
    assert!(
        text == "VM 100 not running"
            || text == "VM 100 qmp command 'query-backup' failed - client closed connection",
        "{text}"
    );
}

#[test]
fn fault_hang_garbage_and_slow_replies() {
    let sim = Sim::start(&[
        "--gen-disk",
        "drive-scsi0=4M",
        "--fault-hang",
        "query-backup",
    ]);
    let options = Options {
        command_timeout: Some(Duration::from_millis(500)),
        ..Options::default()
    };
    let err = vzdump_qemu::progress::query(&peer(&sim), &options).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(err
        .to_string()
        .contains("command 'query-backup' failed - got timeout"));

    let sim = Sim::start(&[
        "--gen-disk",
        "drive-scsi0=4M",
        "--fault-garbage",
        "query-backup",
    ]);
    let err = vzdump_qemu::progress::query(&peer(&sim), &Options::default()).unwrap_err();
    let cause = err.command_error().map(|c| c.cause.clone());
    assert!(matches!(cause, Some(Cause::Protocol { .. })), "{err}");

    let sim = Sim::start(&["--gen-disk", "drive-scsi0=4M", "--fault-slow-ms", "200"]);
    let status = vzdump_qemu::progress::query(&peer(&sim), &Options::default()).unwrap();
    assert_eq!(
        status,
        vzdump_qemu::progress::BackupStatus::default(),
        "nothing ran yet"
    );
}

#[test]
fn status_loop_queries_at_most_about_once_per_second() {
    let dir = testkit::TempDir::new("count");
    let (sim, record) = sim_recording(&dir, &["--gen-disk", "drive-scsi0=64M", "--rate", "16M"]);
    let job = Backup::on(sim, dir);
    let started = Instant::now();
    let (outcome, lines) = poll(&job.peer, &job.uuid, Style::Seed);
    let elapsed = started.elapsed();
    outcome.unwrap();
    job.reader.join().unwrap();
    let queries = std::fs::read_to_string(&record)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"query-backup\""))
        .count();
    assert!(
        queries as f64 <= elapsed.as_secs_f64() + 10.0,
        "{queries} queries in {elapsed:?}"
    );
    assert!(lines.iter().any(|l| l.starts_with("status: ")), "{lines:?}");
    assert!(
        lines.last().unwrap().starts_with("transferred 67 MB in "),
        "{lines:?}"
    );
}

#[test]
fn signal_during_the_loop_interrupts_and_resumes() {
    let job = Backup::start(&["--gen-disk", "drive-scsi0=32M", "--rate", "8M"]);
    let mut poller = job.seed_poller();
    let mut lines = Vec::new();
    // Signals from 1.3 s on until one interrupted a wait (one landing between two calls
    // would be lost to the no-op handler).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let signals = testkit::repeated_signals(Duration::from_millis(1300), &done);
    let err = run_collecting(&mut poller, &mut lines).unwrap_err();
    drop(signals);
    assert!(err.is_interrupted(), "{err}");
    // The loop state survived: resuming finishes the job with its summary.
    run_collecting(&mut poller, &mut lines).unwrap();
    assert!(
        lines.last().unwrap().starts_with("transferred 33 MB in "),
        "{lines:?}"
    );
    job.reader.join().unwrap();
}

#[test]
fn unexpected_status_from_a_scripted_peer() {
    let peer_sock = testkit::FakePeer::on_first_command(|mut s, req| {
        testkit::reply(
            &mut s,
            &req,
            json!({"status": "paused", "uuid": "u", "total": 10, "transferred": 5}),
        );
    });
    let p = Peer::path(&peer_sock.socket);
    let (outcome, lines) = poll(&p, "u", Style::Seed);
    assert_eq!(
        outcome.unwrap_err().to_string(),
        "got unexpected status 'paused'"
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
    peer_sock.join();
}

#[test]
fn seed_era_simulator_has_no_finishing_field() {
    let sim = Sim::start(&["--gen-disk", "drive-scsi0=4M", "--seed-era"]);
    let reply = backup::query_raw(&peer(&sim), &Options::default()).unwrap();
    assert_eq!(
        reply,
        json!({}),
        "seed-era QEMU has no mandatory 'finishing'"
    );
    let mut buf = Vec::new();
    let _ = File::open("/dev/null").unwrap().read_to_end(&mut buf);
}

#[test]
fn refused_start_releases_the_pipe_so_the_reader_sees_eof() {
    let sim = Sim::start(&["--gen-disk", "drive-scsi0=4M"]);
    let dir = testkit::TempDir::new("refused");
    let (w, reader) = pipe_to_file(&dir.path().join("r.vma"));
    let params = VmaParams {
        devlist: Some("drive-missing".into()),
        ..VmaParams::default()
    };
    let err = start_vma(&peer(&sim), w.as_fd(), &params).unwrap_err();
    assert_eq!(err.desc(), "Device 'drive-missing' not found");
    drop(w);
    // Without the closefd after the refusal, QEMU would keep the write end and this join
    // would hang forever.
    assert_eq!(reader.join().unwrap(), 0);
}

/// Today's loop with the `query-proxmox-support` reply (proxmox/qemu-server
/// src/PVE/VZDump/QemuServer.pm `archive_pbs` passes it to `$query_backup_status_loop`):
/// the dirty-bitmap lines come first, the dirty bytes are the percent base, and the
/// result is `{total, reused}`.
#[test]
fn current_loop_logs_the_dirty_bitmap_lines_of_a_pbs_job() {
    const MIB: u64 = 1 << 20;
    let sim = Sim::start(&["--gen-disk", "drive-scsi0=40M", "--rate", "64M"]);
    let options = Options::default();
    let support = backup::proxmox_support(&peer(&sim), &options).unwrap();
    assert_eq!(support["query-bitmap-info"], true);
    let params = PbsParams {
        use_dirty_bitmap: Some(true),
        ..pbs_job("root@pam@localhost:store", "100", 1_700_000_000, Some("pw"))
    };
    // One PBS backup polled in `style`, given today's `query-proxmox-support` reply.
    let run = |style: Style, is_template: bool| {
        let uuid = backup::start_pbs(&peer(&sim), &options, &params, None).unwrap();
        let mut poller = Poller::new(&peer(&sim), &options, &uuid, style, None);
        poller.set_qemu_support(&support, is_template);
        let mut lines = Vec::new();
        let outcome = run_collecting(&mut poller, &mut lines);
        (outcome, lines)
    };
    // A first backup creates the bitmap: a full backup, no incremental line.
    let (_, lines) = run(Style::Current, false);
    assert_eq!(
        lines[0], "scsi0: dirty-bitmap status: created new",
        "{lines:?}"
    );
    assert!(lines[1].contains(" of 40.0 MiB) in "), "{lines:?}");
    // The second one uses it: the simulator leaves every eighth 4 MiB chunk dirty.
    let (done, lines) = run(Style::Current, false);
    assert_eq!(
        lines[..2],
        [
            "scsi0: dirty-bitmap status: OK (8.0 MiB of 40.0 MiB dirty)",
            "using fast incremental mode (dirty-bitmap), 8.0 MiB dirty of 40.0 MiB total",
        ],
        "{lines:?}"
    );
    // The percent base is the dirty part ...
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("100% (8.0 MiB of 8.0 MiB)")),
        "{lines:?}"
    );
    // ... and today's result: last non-zero total and the last reused read.
    let done = done.unwrap();
    assert_eq!(done.totals.total, 40 * MIB);
    assert!(
        done.totals.reused.is_some_and(|r| r >= 32 * MIB),
        "{:?}",
        done.totals
    );
    // A template logs no per-drive line, the totals still count.
    let (_, lines) = run(Style::Current, true);
    assert_eq!(
        lines[0], "using fast incremental mode (dirty-bitmap), 8.0 MiB dirty of 40.0 MiB total",
        "{lines:?}"
    );
    // The seed's loop has no such step, and (older than dirty bitmaps) takes an
    // incremental job's byte count for a failure.
    let (outcome, lines) = run(Style::Seed, false);
    assert_eq!(
        outcome.unwrap_err().to_string(),
        "got wrong number of transfered bytes (41943040 != 8388608)"
    );
    assert!(
        lines.iter().all(|l| !l.contains("dirty-bitmap")),
        "{lines:?}"
    );
}

/// A devlist naming a device twice crashes pve-qemu 10.0.2 (the simulator dies by SIGSEGV
/// on it, see sim/tests): both starts refuse it before connecting, so QEMU never sees it.
#[test]
fn a_repeated_device_never_reaches_qemu() {
    let dir = testkit::TempDir::new("dup");
    let (mut sim, record) = sim_recording(&dir, &["--gen-disk", "drive-scsi0=4M"]);
    let before = std::fs::read_to_string(&record).unwrap_or_default();
    let (_r, w) = nix::unistd::pipe().unwrap();
    let vma = VmaParams {
        devlist: Some("drive-scsi0;drive-scsi0".into()),
        ..VmaParams::default()
    };
    let err = start_vma(&peer(&sim), w.as_fd(), &vma).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    let pbs = PbsParams {
        devlist: Some("drive-scsi0,drive-scsi0".into()),
        ..pbs_job("root@pam@localhost:store", "100", 1, None)
    };
    let err = backup::start_pbs(&peer(&sim), &Options::default(), &pbs, None).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert_eq!(
        std::fs::read_to_string(&record).unwrap_or_default(),
        before,
        "nothing was sent"
    );
    assert!(
        sim.child.try_wait().unwrap().is_none(),
        "the simulator is alive"
    );
}

/// The seed's `eval` around its loop: any failure logs `aborting backup job` and sends
/// `backup-cancel` (its `mon_backup_cancel`), then the error comes back.
#[test]
fn poll_or_cancel_cancels_a_failed_job() {
    let dir = testkit::TempDir::new("abort");
    let (sim, record) = sim_recording(
        &dir,
        &[
            "--gen-disk",
            "drive-scsi0=16M",
            "--rate",
            "16M",
            "--fault-error-at",
            "50",
        ],
    );
    let job = Backup::on(sim, dir);
    let mut poller = job.seed_poller();
    let mut lines = Vec::new();
    let err = vzdump_qemu::progress::poll_or_cancel(
        &mut poller,
        &mut |level: Level, s: &str| lines.push((level, s.to_string())),
        &mut || false,
    )
    .unwrap_err();
    let _ = job.reader.join();
    assert_eq!(
        err.to_string(),
        "job failed with err -5 - Input/output error"
    );
    assert_eq!(
        lines.last().unwrap(),
        &(Level::Info, "aborting backup job".to_string())
    );
    let requests = std::fs::read_to_string(&record).unwrap();
    assert!(
        requests
            .lines()
            .last()
            .unwrap()
            .contains("\"backup-cancel\""),
        "{requests}"
    );
}

/// A `query-backup` that never answers: the loop's cancel check is still asked while it
/// waits (qemu-server's query timeout is 10 minutes), and a stop ends the loop at once
/// with `Cancelled`.
#[test]
fn the_cancel_check_is_asked_while_a_query_hangs() {
    let p = testkit::FakePeer::on_first_command(|mut s, req| {
        assert_eq!(req["execute"], "query-backup");
        // Never answers; holds the connection until the client goes (at most 3 s, so that
        // a loop that does not ask fails on the closed connection instead of hanging).
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = [0u8; 64];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    });
    let peer = Peer::path(&p.socket);
    let mut poller = Poller::new(&peer, &Options::default(), "u", Style::Seed, None);
    let asked = std::cell::Cell::new(0u32);
    let outcome = poller.run(&mut |_, _| {}, &mut || {
        asked.set(asked.get() + 1);
        // Stop once asked during the query (the first ask is before it).
        asked.get() > 3
    });
    assert!(matches!(outcome, Err(Error::Cancelled)), "{outcome:?}");
    drop(poller);
    p.join();
}

/// A PBS start a signal interrupts while QEMU still works on it: the start's outcome is
/// unknown, so the job QEMU may have started is cancelled before the error comes back.
#[test]
fn an_interrupted_start_cancels_the_job_it_may_have_started() {
    // 4 s of backup once it started: still active when the test looks, unless cancelled.
    let sim = Sim::start(&[
        "--gen-disk",
        "drive-scsi0=16M",
        "--rate",
        "4M",
        "--pbs-connect-delay-ms",
        "1500",
    ]);
    let params = pbs_job("root@pam@h:s", "1", 1, Some("x"));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let signals = testkit::repeated_signals(Duration::from_millis(300), &done);
    let err = backup::start_pbs(&peer(&sim), &Options::default(), &params, None).unwrap_err();
    drop(signals);
    assert!(err.is_interrupted(), "{err}");
    let status = backup::query_raw(&peer(&sim), &Options::default()).unwrap();
    assert_ne!(status["status"], "active", "{status}");
}
