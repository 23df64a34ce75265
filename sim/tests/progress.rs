//! The shape of VMA progress as pve-qemu 10.0 shows it: 1 MiB right after `backup`, then
//! 2 MiB bursts with stalls between them, the full count at the end; `--smooth-progress`
//! publishes every cluster.

mod common;

use std::time::Duration;

use common::Sim;
use serde_json::{json, Value};

const MIB: u64 = 1 << 20;

/// `1 MiB + k * 2 MiB`.
fn on_grid(v: u64) -> bool {
    v >= MIB && (v - MIB) % (2 * MIB) == 0
}

/// Runs a VMA backup of a generated disk of `size` and returns every `query-backup` reply,
/// polled every `interval` from right after `backup` until the job ended.
fn poll_backup(size: &str, flags: &[&str], interval: Duration) -> Vec<Value> {
    let disk = format!("drive-scsi0={size}");
    let mut args = vec!["--gen-disk", disk.as_str()];
    args.extend_from_slice(flags);
    let sim = Sim::start(&args);
    let mut c = sim.client();
    let (sink, _) = c.start_vma_backup();
    let replies = c.replies_to_end(interval);
    vma::verify(&sink.finish()[..]).unwrap();
    replies
}

/// The first `query-backup` reply of a VMA backup of a generated disk of `size` at `rate`
/// (the backup is canceled then).
fn first_reply(size: &str, rate: &str) -> Value {
    let disk = format!("drive-scsi0={size}");
    let sim = Sim::start(&["--gen-disk", disk.as_str(), "--rate", rate]);
    let mut c = sim.client();
    let (sink, _) = c.start_vma_backup();
    let st = c.ok("query-backup", json!({}));
    c.ok("backup-cancel", json!({}));
    drop(sink.finish());
    st
}

fn transferred(st: &Value) -> u64 {
    st["transferred"].as_u64().unwrap()
}

#[test]
fn first_query_after_backup_shows_one_mib() {
    let st = first_reply("16M", "4M");
    assert_eq!(st["status"], "active", "{st}");
    assert_eq!(st["transferred"], MIB, "{st}");
    assert!(st["zero-bytes"].as_u64().unwrap() <= MIB, "{st}");

    // A disk smaller than 1 MiB shows all of it at once.
    let st = first_reply("512K", "64K");
    assert_eq!(st["status"], "active", "{st}");
    assert_eq!(st["transferred"], 512 << 10, "{st}");
    assert_eq!(st["transferred"], st["total"], "{st}");
}

#[test]
fn rate_capped_progress_comes_in_bursts_with_stalls() {
    // 16 MiB at 8 MiB/s: a 2 MiB burst takes 250 ms, polls come every ~20 ms.
    let replies = poll_backup("16M", &["--rate", "8M"], Duration::from_millis(20));
    let total = 16 * MIB;
    let (done, active) = replies.split_last().unwrap();
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(transferred(done), total);
    let values: Vec<u64> = active.iter().map(transferred).collect();
    assert!(
        values.iter().all(|&v| on_grid(v) || v == total),
        "{values:?}"
    );
    assert!(values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
    assert_eq!(values[0], MIB, "{values:?}");
    // About ten polls per burst; even much slower polls repeat values.
    let repeats = values.windows(2).filter(|w| w[0] == w[1]).count();
    assert!(
        repeats > 0 && repeats * 4 >= values.len(),
        "stalls: {values:?}"
    );
    let distinct: std::collections::BTreeSet<u64> = values.iter().copied().collect();
    assert!(distinct.len() >= 4, "several bursts seen: {values:?}");
    for st in &replies {
        let zero = st["zero-bytes"].as_u64().unwrap();
        assert!(zero <= transferred(st), "zero-bytes ahead: {st}");
        assert_eq!(st["finishing"], false, "{st}");
    }
    // The generated disk has zeros: they are published with the bursts.
    assert!(done["zero-bytes"].as_u64().unwrap() > 0, "{done}");
}

#[test]
fn smooth_progress_publishes_every_cluster() {
    let replies = poll_backup(
        "16M",
        &["--rate", "8M", "--smooth-progress"],
        Duration::from_millis(20),
    );
    let total = 16 * MIB;
    let (done, active) = replies.split_last().unwrap();
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(transferred(done), total);
    let values: Vec<u64> = active.iter().map(transferred).collect();
    assert!(values[0] < MIB, "no 1 MiB at the start: {values:?}");
    let off_grid = values
        .iter()
        .filter(|&&v| !on_grid(v) && v != total)
        .count();
    assert!(off_grid >= values.len() / 2, "{values:?}");
    assert!(values.iter().all(|v| v % 65536 == 0), "{values:?}");
}

#[test]
fn unlimited_rate_ends_with_the_full_count() {
    // A disk size that is no multiple of 64 KiB: the final count is off the grid.
    let dir = common::TempDir::new("odd");
    let image = dir.join("odd.raw");
    common::make_disk(&image, 5 * MIB + 12345, 3);
    let disk = format!("drive-scsi0={}", image.display());
    let sim = Sim::start_in(dir, &["--disk", disk.as_str()]);
    let mut c = sim.client();
    let (sink, _) = c.start_vma_backup();
    let replies = c.replies_to_end(Duration::ZERO);
    let values: Vec<u64> = replies.iter().map(transferred).collect();
    let done = replies.last().unwrap();
    let data = std::fs::read(&image).unwrap();
    assert_eq!(done["status"], "done");
    assert_eq!(transferred(done), 5 * MIB + 12345);
    assert_eq!(done["zero-bytes"], common::vma_zero_bytes(&data));
    let total = 5 * MIB + 12345;
    assert!(
        values.iter().all(|&v| on_grid(v) || v == total),
        "{values:?}"
    );
    vma::verify(&sink.finish()[..]).unwrap();
}
