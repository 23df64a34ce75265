//! The current format (qemu-server 6.2-12 and later): binary units and durations
//! (proxmox/qemu-server `src/PVE/VZDump/QemuServer.pm`). Every number is computed as `$query_backup_status_loop`
//! of `proxmox/qemu-server src/PVE/VZDump/QemuServer.pm` computes it in Perl ([`PerlNum`]).

use super::format::{bytes_text, duration_text};
use super::perl_num::PerlNum;
use super::status_loop::{per_second, percent_of, Last, Numbers};
use crate::log::LogLine;

/// `$get_mbps`: `"0 B/s"` unless `mb` is positive, else `render_bytes(int($mb / $delta), 1)`
/// followed by `/s`. A negative `delta` (clock went backwards) gives a negative rate, which
/// `render_bytes` prints as plain bytes, as in Perl.
fn rate(mb: PerlNum, delta: PerlNum) -> String {
    match per_second(mb, delta) {
        Some(bw) => format!("{}/s", bytes_text(bw, 1)),
        None => "0 B/s".to_string(),
    }
}

/// `<p>% (<transferred> of <target>) in <duration>, read: <rate>, write: <rate>`, the
/// percent padded to three characters (`%3d`).
pub(super) fn status_line(n: &Numbers) -> String {
    // A negative duration (clock went backwards) renders empty, as in Perl.
    format!(
        "{:3}% ({} of {}) in {}, read: {}, write: {}",
        n.percent.to_iv(),
        bytes_text(PerlNum::from(n.transferred), 1),
        bytes_text(n.target, 1),
        duration_text(n.duration),
        rate(n.read, n.timediff),
        rate(n.write, n.timediff)
    )
}

/// The sparse, incremental and transferred lines, each only when its count is non-zero.
pub(super) fn summary(last: &Last, duration: PerlNum) -> Vec<LogLine> {
    let mut lines = Vec::new();
    if last.zero != 0 {
        let zero = PerlNum::from(last.zero);
        // $last_target ? int(($last_zero * 100) / $last_target) : 0
        let per = percent_of(zero, last.target, 0);
        lines.push(LogLine::info(format!(
            "backup is sparse: {} ({per}%) total zero data",
            bytes_text(zero, 2)
        )));
    }
    if let Some(reused) = last.read_reused.filter(|&r| r != 0) {
        let reused = PerlNum::from(reused);
        // int($reused * 100 / $last_total): Perl dies dividing by a zero total; QEMU never
        // reports reuse without one, and this prints 0 % instead.
        let per = percent_of(reused, PerlNum::from(last.total), 0);
        lines.push(LogLine::info(format!(
            "backup was done incrementally, reused {} ({per}%)",
            bytes_text(reused, 2)
        )));
    }
    if last.read_transferred != 0 {
        let transferred = PerlNum::from(last.read_transferred);
        let bytes = bytes_text(transferred, 2);
        lines.push(LogLine::info(if duration.is_true() {
            format!(
                "transferred {bytes} in {duration} seconds ({})",
                rate(transferred, duration)
            )
        } else {
            format!("transferred {bytes} in <1 seconds")
        }));
    }
    lines
}
