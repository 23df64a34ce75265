//! The current format (qemu-server 6.2-12 and later): binary units and durations
//! (`docs/pve-backup-qmp.md` 11.3).

use std::num::NonZeroI64;

use super::format::{render_bytes, render_duration};
use super::status_loop::{percent_of, Last, Numbers};
use super::LogLine;

/// `<bytes/secs> B/s` in binary units with one decimal, `0 B/s` unless `bytes` is positive.
fn rate(bytes: i128, secs: NonZeroI64) -> String {
    if bytes <= 0 {
        return "0 B/s".to_string();
    }
    let per_sec = bytes / i128::from(secs.get());
    match u64::try_from(per_sec) {
        Ok(value) => format!("{}/s", render_bytes(value, 1)),
        // Only with a wall clock that went backwards; Perl prints the raw negative number.
        Err(_) => format!("{:.1} B/s", per_sec as f64),
    }
}

/// `<p>% (<transferred> of <target>) in <duration>, read: <rate>, write: <rate>`, the
/// percent padded to three characters.
pub(super) fn status_line(n: &Numbers) -> String {
    // A negative duration (clock went backwards) renders empty, as in Perl.
    let duration = u64::try_from(n.duration).map_or(String::new(), render_duration);
    format!(
        "{:3}% ({} of {}) in {duration}, read: {}, write: {}",
        n.percent,
        render_bytes(n.transferred, 1),
        render_bytes(n.target, 1),
        rate(n.read, n.timediff),
        rate(n.write, n.timediff)
    )
}

/// The sparse, incremental and transferred lines, each only when its count is non-zero.
pub(super) fn summary(last: &Last, duration: i64) -> Vec<LogLine> {
    let mut lines = Vec::new();
    if last.zero != 0 {
        let per = percent_of(last.zero, last.target);
        lines.push(LogLine::info(format!(
            "backup is sparse: {} ({per}%) total zero data",
            render_bytes(last.zero, 2)
        )));
    }
    if let Some(reused) = last.read_reused.filter(|&r| r != 0) {
        // Perl would die dividing by a zero total; QEMU never reports reuse without one.
        let per = percent_of(reused, last.total);
        lines.push(LogLine::info(format!(
            "backup was done incrementally, reused {} ({per}%)",
            render_bytes(reused, 2)
        )));
    }
    if last.read_transferred != 0 {
        let bytes = render_bytes(last.read_transferred, 2);
        lines.push(LogLine::info(match NonZeroI64::new(duration) {
            Some(secs) => format!(
                "transferred {bytes} in {duration} seconds ({})",
                rate(i128::from(last.read_transferred), secs)
            ),
            None => format!("transferred {bytes} in <1 seconds"),
        }));
    }
    lines
}
