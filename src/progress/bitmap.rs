//! The dirty-bitmap lines the current loop logs before polling, from a
//! `query-pbs-bitmap-info` reply (proxmox/qemu-server `src/PVE/VZDump/QemuServer.pm`,
//! `$bitmap_action_to_human` and the start of `$query_backup_status_loop`).

use serde::Deserialize;

use super::format::{bytes_text, render_bytes};
use super::perl_num::PerlNum;
use crate::log::LogLine;

/// One drive of a `query-pbs-bitmap-info` reply (`PBSBitmapInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BitmapInfo {
    /// Drive id, e.g. `drive-scsi0`.
    pub drive: String,
    /// `not-used`, `not-used-removed`, `new`, `used`, `invalid` or `missing-recreated`.
    pub action: String,
    /// Size of the drive in bytes.
    pub size: u64,
    /// Bytes the bitmap marks dirty (`size` unless the action is `used`).
    pub dirty: u64,
}

/// What the bitmap info contributes to a current-style loop: its log lines and the fixed
/// backup target. Build it with [`BitmapSetup::new`], log [`lines`](Self::lines), then pass
/// it to [`StatusLoop::new`](super::StatusLoop::new).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitmapSetup {
    /// Per-drive status lines, then the fast incremental line if any part is clean.
    pub lines: Vec<LogLine>,
    /// Sum of the dirty bytes: the percent base of the whole run. A Perl sum, so a double
    /// once it passes `u64::MAX`.
    pub(super) target: PerlNum,
    /// Sum of the clean bytes: the initial "reused" counter for write rates.
    pub(super) reused: PerlNum,
}

impl BitmapSetup {
    /// Sorts `drives` by name and derives the lines and totals. A template logs no
    /// per-drive lines (its bitmaps mean nothing to the user) but keeps the totals. The sums
    /// are Perl's (`$target += $info->{dirty}`, `$total += $info->{size}`,
    /// `$last_reused += $info->{size} - $info->{dirty}` in `$query_backup_status_loop`).
    pub fn new(drives: &[BitmapInfo], is_template: bool) -> Self {
        let mut sorted: Vec<&BitmapInfo> = drives.iter().collect();
        sorted.sort_by(|a, b| a.drive.cmp(&b.drive));
        let (mut target, mut total, mut reused) = (PerlNum::ZERO, PerlNum::ZERO, PerlNum::ZERO);
        let mut lines = Vec::new();
        for info in sorted {
            if !is_template {
                let drive = info.drive.strip_prefix("drive-").unwrap_or(&info.drive);
                lines.push(LogLine::info(format!(
                    "{drive}: dirty-bitmap status: {}",
                    action_text(info)
                )));
            }
            let (size, dirty) = (PerlNum::from(info.size), PerlNum::from(info.dirty));
            target = target + dirty;
            total = total + size;
            reused = reused + (size - dirty);
        }
        if target.num_lt(total) {
            lines.push(LogLine::info(format!(
                "using fast incremental mode (dirty-bitmap), {} dirty of {} total",
                bytes_text(target, 1),
                bytes_text(total, 1)
            )));
        }
        BitmapSetup {
            lines,
            target,
            reused,
        }
    }
}

/// The words qemu-server uses for a drive's bitmap action.
fn action_text(info: &BitmapInfo) -> String {
    match info.action.as_str() {
        "not-used" => "disabled (no support)".into(),
        "not-used-removed" => "disabled (old bitmap cleared)".into(),
        "new" => "created new".into(),
        "used" if info.dirty == 0 => "OK (drive clean)".into(),
        "used" => format!(
            "OK ({} of {} dirty)",
            render_bytes(info.dirty, 1),
            render_bytes(info.size, 1)
        ),
        "invalid" => "existing bitmap was invalid and has been cleared".into(),
        // The TPM state drive is recreated on every backup: not worth a warning.
        "missing-recreated" if info.drive == "drive-tpmstate0-backup" => "created new".into(),
        "missing-recreated" => "expected bitmap was missing and has been recreated".into(),
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drive(name: &str, action: &str, size: u64, dirty: u64) -> BitmapInfo {
        BitmapInfo {
            drive: name.into(),
            action: action.into(),
            size,
            dirty,
        }
    }

    fn texts(setup: &BitmapSetup) -> Vec<&str> {
        setup.lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn every_action_has_its_text_and_drives_are_sorted() {
        const G: u64 = 1 << 30;
        let drives = [
            drive("drive-virtio1", "used", 32 * G, 0),
            drive("drive-scsi0", "used", 32 * G, G / 2),
            drive("drive-efidisk0", "not-used", 1 << 20, 1 << 20),
            drive("drive-sata0", "not-used-removed", G, G),
            drive("drive-ide0", "new", G, G),
            drive("drive-scsi1", "invalid", G, G),
            drive(
                "drive-tpmstate0-backup",
                "missing-recreated",
                4 << 20,
                4 << 20,
            ),
            drive("drive-scsi2", "missing-recreated", G, G),
            drive("ide2", "something-else", G, G),
        ];
        let setup = BitmapSetup::new(&drives, false);
        assert_eq!(
            texts(&setup),
            [
                "efidisk0: dirty-bitmap status: disabled (no support)",
                "ide0: dirty-bitmap status: created new",
                "sata0: dirty-bitmap status: disabled (old bitmap cleared)",
                "scsi0: dirty-bitmap status: OK (512.0 MiB of 32.0 GiB dirty)",
                "scsi1: dirty-bitmap status: existing bitmap was invalid and has been cleared",
                "scsi2: dirty-bitmap status: expected bitmap was missing and has been recreated",
                "tpmstate0-backup: dirty-bitmap status: created new",
                "virtio1: dirty-bitmap status: OK (drive clean)",
                "ide2: dirty-bitmap status: unknown",
                "using fast incremental mode (dirty-bitmap), 5.5 GiB dirty of 69.0 GiB total",
            ]
        );
        let total = 64 * G + (1 << 20) + 5 * G + (4 << 20);
        let target = G / 2 + (1 << 20) + 5 * G + (4 << 20);
        assert_eq!(setup.target, PerlNum::from(target));
        assert_eq!(setup.reused, PerlNum::from(total - target));
    }

    #[test]
    fn full_backup_has_no_incremental_line_and_templates_no_drive_lines() {
        let drives = [drive("drive-scsi0", "new", 1 << 30, 1 << 30)];
        let setup = BitmapSetup::new(&drives, false);
        assert_eq!(texts(&setup), ["scsi0: dirty-bitmap status: created new"]);
        assert_eq!(
            (setup.target, setup.reused),
            (PerlNum::from(1u64 << 30), PerlNum::ZERO)
        );

        let drives = [drive("drive-scsi0", "used", 1 << 30, 1 << 20)];
        let setup = BitmapSetup::new(&drives, true);
        assert_eq!(
            texts(&setup),
            ["using fast incremental mode (dirty-bitmap), 1.0 MiB dirty of 1.0 GiB total"]
        );
    }

    #[test]
    fn parses_the_qmp_reply() {
        let json = r#"[{"drive":"drive-scsi0","action":"used","size":1024,"dirty":0}]"#;
        let parsed: Vec<BitmapInfo> = serde_json::from_str(json).unwrap();
        assert_eq!(parsed, [drive("drive-scsi0", "used", 1024, 0)]);
    }
}
