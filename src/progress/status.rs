//! The reply of `query-backup` (`BackupStatus` in pve-qemu's QAPI schema).

use serde::Deserialize;

use crate::error::{Cause, CommandError, Error, Result, Stage};
use crate::qmp::{framing::excerpt, Options, Peer};

/// One `query-backup` reply. Every field but `finishing` is optional in the schema: a QEMU
/// that never ran a backup answers `{"finishing": false}`, and seed-era QEMU has no
/// `finishing`, `dirty` or `reused` at all, so all of them default to absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BackupStatus {
    /// `active`, `done` or `error`.
    pub status: Option<String>,
    /// Error text, present with status `error`.
    pub errmsg: Option<String>,
    /// Sum of the sizes of all included devices, in bytes.
    pub total: Option<u64>,
    /// Bytes to back up after dirty-bitmap reuse (`total` without a bitmap).
    pub dirty: Option<u64>,
    /// Bytes handed to the target so far.
    pub transferred: Option<u64>,
    /// Bytes found to be all zero.
    pub zero_bytes: Option<u64>,
    /// PBS: bytes not uploaded because the server had them or the bitmap said clean.
    pub reused: Option<u64>,
    /// Start time, epoch seconds.
    pub start_time: Option<i64>,
    /// End time, epoch seconds; present once the job ended.
    pub end_time: Option<i64>,
    /// The target as given to `backup`.
    pub backup_file: Option<String>,
    /// Job UUID (lowercase, 36 characters).
    pub uuid: Option<String>,
    /// True while the jobs are done and the writer is being closed.
    #[serde(default)]
    pub finishing: bool,
}

/// `query-backup` on its own connection (10 min timeout, as qemu-server).
pub fn query(peer: &Peer, options: &Options) -> Result<BackupStatus> {
    query_watched(peer, options, &mut || false)
}

/// [`query`], asking `cancelled` at least every 100 ms while the reply is awaited (it may
/// take the whole 10 minutes): when it says stop, the query fails with
/// [`Error::Cancelled`].
pub fn query_watched(
    peer: &Peer,
    options: &Options,
    cancelled: &mut dyn FnMut() -> bool,
) -> Result<BackupStatus> {
    let reply = crate::qmp::command_watched(peer, "query-backup", None, None, options, cancelled)?;
    serde_json::from_value(reply.clone()).map_err(|e| {
        Error::from(CommandError {
            peer: peer.clone(),
            command: "query-backup".into(),
            stage: Stage::Command,
            cause: Cause::Protocol {
                reason: format!(
                    "reply not understood ({e}): '{}'",
                    excerpt(reply.to_string().as_bytes())
                ),
            },
            style: options.style,
            bare: false,
        })
    })
}
