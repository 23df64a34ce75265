//! The backup job as `query-backup` and `query-pbs-bitmap-info` show it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::qjson::{obj, J};

/// QEMU's `BackupStatus` record of one job.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// First error recorded (cancellation included).
    pub errmsg: Option<String>,
    /// Sum of the device sizes.
    pub total: u64,
    /// `total` minus what a dirty bitmap proved clean.
    pub dirty: u64,
    /// Bytes handed to the target, as published (see `worker::Publish`).
    pub transferred: u64,
    /// Zero bytes (VMA: 4 KiB blocks; PBS: 4 MiB chunks), published with `transferred`.
    pub zero_bytes: u64,
    /// PBS: bytes not uploaded (clean or known chunks).
    pub reused: u64,
    /// Epoch seconds of the start.
    pub start_time: i64,
    /// Epoch seconds of the end; `None` while active.
    pub end_time: Option<i64>,
    /// The `backup-file` argument.
    pub backup_file: String,
    /// The uuid `query-backup` reports.
    pub uuid: String,
    /// PBS only: all data copied, the server finishes the snapshot (never set for VMA).
    pub finishing: bool,
}

impl Record {
    /// `active` until the end, then `error` if an error was recorded, else `done`.
    pub fn status(&self) -> &'static str {
        match (&self.end_time, &self.errmsg) {
            (None, _) => "active",
            (Some(_), Some(_)) => "error",
            (Some(_), None) => "done",
        }
    }

    /// Records `msg` unless an error is already recorded (the first error wins).
    pub fn set_error(&mut self, msg: &str) {
        if self.errmsg.is_none() {
            self.errmsg = Some(msg.to_string());
        }
    }

    /// The `query-backup` reply; `seed_era` leaves out what pve-qemu added after mid-2020.
    pub fn to_json(&self, seed_era: bool) -> J {
        let mut r = obj([("status", self.status().into())]);
        if self.status() == "error" {
            if let Some(e) = &self.errmsg {
                r.push("errmsg", e.as_str().into());
            }
        }
        r.push("total", self.total.into());
        if !seed_era {
            r.push("dirty", self.dirty.into());
        }
        r.push("transferred", self.transferred.into());
        r.push("zero-bytes", self.zero_bytes.into());
        if !seed_era {
            r.push("reused", self.reused.into());
        }
        r.push("start-time", self.start_time.into());
        if let Some(end) = self.end_time {
            r.push("end-time", end.into());
        }
        r.push("backup-file", self.backup_file.as_str().into());
        r.push("uuid", self.uuid.as_str().into());
        if !seed_era {
            r.push("finishing", self.finishing.into());
        }
        r
    }
}

/// `query-backup` before any backup: only the mandatory `finishing` (nothing in 2020).
pub fn no_job_json(seed_era: bool) -> J {
    if seed_era {
        obj([])
    } else {
        obj([("finishing", false.into())])
    }
}

/// The most recent backup job.
pub struct Job {
    /// What `query-backup` shows.
    pub record: Record,
    /// Set by `backup-cancel`; the worker stops at its next check.
    pub cancel: Arc<AtomicBool>,
    /// The worker thread, joined by `backup-cancel` and before the next job starts.
    pub worker: Option<JoinHandle<()>>,
}

impl Job {
    /// Registered and not finished: a new `backup` is refused.
    pub fn is_active(&self) -> bool {
        self.record.end_time.is_none()
    }
}

/// A PBS dirty bitmap of one drive, keyed by the snapshot group it was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BitmapState {
    /// Created by a backup that has not succeeded (yet).
    Pending(String),
    /// Matches the last successful backup of that group.
    Valid(String),
}

/// `PBSBitmapAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitmapAction {
    /// No bitmap used, none existed.
    NotUsed,
    /// No bitmap used, an existing one was dropped.
    NotUsedRemoved,
    /// Bitmap created, full backup.
    New,
    /// Bitmap used: only dirty chunks read.
    Used,
    /// Bitmap existed but did not match the previous backup: full backup.
    Invalid,
}

impl BitmapAction {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            BitmapAction::NotUsed => "not-used",
            BitmapAction::NotUsedRemoved => "not-used-removed",
            BitmapAction::New => "new",
            BitmapAction::Used => "used",
            BitmapAction::Invalid => "invalid",
        }
    }
}

/// One entry of `query-pbs-bitmap-info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitmapInfo {
    /// Drive name.
    pub drive: String,
    /// What was done with the bitmap.
    pub action: BitmapAction,
    /// Drive size.
    pub size: u64,
    /// Bytes to back up.
    pub dirty: u64,
}

impl BitmapInfo {
    /// `PBSBitmapInfo` in schema order.
    pub fn to_json(&self) -> J {
        obj([
            ("drive", self.drive.as_str().into()),
            ("action", self.action.as_str().into()),
            ("size", self.size.into()),
            ("dirty", self.dirty.into()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_quirk() {
        let mut r = Record {
            total: 10,
            start_time: 5,
            uuid: "u".into(),
            backup_file: "/dev/fdname/backup".into(),
            ..Record::default()
        };
        assert_eq!(r.status(), "active");
        let text = r.to_json(false).encode();
        assert!(
            !text.contains("end-time") && !text.contains("errmsg"),
            "{text}"
        );
        r.end_time = Some(6);
        assert_eq!(r.status(), "done");
        r.set_error("backup canceled");
        r.set_error("later");
        assert_eq!(r.status(), "error");
        let text = r.to_json(false).encode();
        assert!(text.contains(r#""errmsg": "backup canceled""#), "{text}");
        assert!(text.contains(r#""end-time": 6"#), "{text}");
        let seed = r.to_json(true).encode();
        for gone in ["finishing", "dirty", "reused"] {
            assert!(!seed.contains(gone), "{seed}");
        }
        assert_eq!(no_job_json(false).encode(), r#"{"finishing": false}"#);
        assert_eq!(no_job_json(true).encode(), "{}");
    }
}
