//! The 2020 (seed) format: raw byte counts, decimal MB (`docs/pve-backup-qmp.md` 11.2).

use std::num::NonZeroI64;

use super::status_loop::{percent_of, Last, Numbers};
use super::LogLine;

/// Whole decimal MB per second, truncated; 0 unless `bytes` is positive.
fn mbps(bytes: i128, secs: NonZeroI64) -> i128 {
    if bytes > 0 {
        bytes / i128::from(secs.get()) / 1_000_000
    } else {
        0
    }
}

/// `status: <p>% (<transferred>/<total>), sparse <z>% (<zero>), duration <d>, read/write <r>/<w> MB/s`.
pub(super) fn status_line(n: &Numbers) -> String {
    let zero_per = percent_of(n.zero, n.total);
    format!(
        "status: {}% ({}/{}), sparse {zero_per}% ({}), duration {}, read/write {}/{} MB/s",
        n.percent,
        n.transferred,
        n.total,
        n.zero,
        n.duration,
        mbps(n.read, n.timediff),
        mbps(n.write, n.timediff)
    )
}

/// `transferred <n> MB in <s> seconds (<r> MB/s)`, when both the last transferred count
/// and the duration are non-zero.
pub(super) fn summary(last: &Last, duration: i64) -> Vec<LogLine> {
    match NonZeroI64::new(duration) {
        Some(secs) if last.read_transferred != 0 => {
            let bytes = last.read_transferred;
            vec![LogLine::info(format!(
                "transferred {} MB in {duration} seconds ({} MB/s)",
                bytes / 1_000_000,
                mbps(i128::from(bytes), secs)
            ))]
        }
        _ => Vec::new(),
    }
}
