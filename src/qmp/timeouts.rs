//! qemu-server's per-command timeouts (`PVE::QMPClient::cmd`, current version).

use std::time::Duration;

const MIN: u64 = 60;

/// Timeout for commands without an entry of their own (qemu-server 7.2 and later).
pub const DEFAULT: Duration = Duration::from_secs(5);
/// `cont` after a backup job started: QEMU may still be busy with the async `backup`.
pub const CONT_AFTER_BACKUP: Duration = Duration::from_secs(45);
/// PBS `backup` start: above the PBS client's 120 s HTTP timeout.
pub const PBS_BACKUP_START: Duration = Duration::from_secs(125);
/// The seed's PBS `backup` start (`$params->{timeout} = 60`).
pub const PBS_BACKUP_START_SEED: Duration = Duration::from_secs(60);
/// One budget for the whole VMA start: connect, `qmp_capabilities`, `getfd`, `backup`.
pub const VMA_BACKUP_START: Duration = Duration::from_secs(30);
/// Connecting to the socket (qemu-server retries for up to the command timeout).
pub const CONNECT: Duration = Duration::from_secs(5);
/// Reading the greeting and negotiating capabilities.
pub const HANDSHAKE: Duration = Duration::from_secs(5);

/// The timeout of one call of `command`: the caller's `timeout`, else the options'
/// `command_timeout` (which replaces the table), else qemu-server's ([`for_command`]).
pub fn resolve(
    command: &str,
    timeout: Option<Duration>,
    command_timeout: Option<Duration>,
) -> Duration {
    timeout
        .or(command_timeout)
        .unwrap_or_else(|| for_command(command))
}

/// The timeout qemu-server uses for `command` when its caller passes none.
pub fn for_command(command: &str) -> Duration {
    let secs = match command {
        "query-backup"
        | "backup-cancel"
        | "query-block-jobs"
        | "query-savevm"
        | "savevm-start"
        | "savevm-end"
        | "block-job-cancel"
        | "guest-shutdown"
        | "block-commit"
        | "block-export-del"
        | "block-stream"
        | "blockdev-del"
        | "blockdev-mirror"
        | "blockdev-remove-medium"
        | "blockdev-reopen"
        | "job-complete"
        | "drive-mirror"
        | "guest-fstrim" => 10 * MIN,
        "query-migrate"
        | "guest-fsfreeze-freeze"
        | "blockdev-snapshot-internal-sync"
        | "blockdev-snapshot-delete-internal-sync" => 60 * MIN,
        "guest-fsfreeze-thaw" => 3 * MIN,
        "blockdev-add"
        | "blockdev-insert-medium"
        | "block-export-add"
        | "device_add"
        | "device_del"
        | "netdev_add"
        | "netdev_del"
        | "object-add"
        | "object-del"
        | "quit" => MIN,
        c if c.starts_with("eject") || c.starts_with("change") => MIN,
        _ => return DEFAULT,
    };
    Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_qemu_server() {
        assert_eq!(for_command("query-status"), Duration::from_secs(5));
        assert_eq!(for_command("backup"), Duration::from_secs(5));
        assert_eq!(for_command("query-backup"), Duration::from_secs(600));
        assert_eq!(for_command("backup-cancel"), Duration::from_secs(600));
        assert_eq!(
            for_command("guest-fsfreeze-freeze"),
            Duration::from_secs(3600)
        );
        assert_eq!(for_command("guest-fsfreeze-thaw"), Duration::from_secs(180));
        assert_eq!(for_command("eject"), Duration::from_secs(60));
        assert_eq!(for_command("change-vnc-password"), Duration::from_secs(60));
        assert_eq!(for_command("quit"), Duration::from_secs(60));
        assert_eq!(for_command("query-migrate"), Duration::from_secs(3600));
    }
}
