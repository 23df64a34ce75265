//! The command line as clap declares it: the commands and their options with their help
//! texts, the source of `--help` and of the man pages (`mangen/` includes this file, so it
//! uses nothing but clap and std). Values that have texts of their own when wrong
//! (`--compress`, `--style`, `--compare`) are kept as strings and checked by the commands.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

/// Where Proxmox VE keeps the VMs' monitor and agent sockets and pid files
/// (`vzdump_qemu::qmp::DEFAULT_RUN_DIR`).
pub const DEFAULT_RUN_DIR: &str = "/var/run/qemu-server";

/// vzdump-qemu: QEMU backups over QMP for administrators and scripts (status, cancel, raw
/// QMP, the whole backup job of vzdump's QEMU plugin, a monitor probe, archive checks).
#[derive(Parser, Debug)]
#[command(
    name = "vzdump-qemu",
    version,
    // A value may start with '-' (a JSON text, a command), as with the parser before clap.
    allow_hyphen_values = true,
    args_override_self = true,
    max_term_width = 100,
    after_help = "PEER: --vmid N [--run-dir DIR] | --socket PATH [--agent QGA_SOCKET]; \
                  'vzdump-qemu COMMAND --help' shows a command's options."
)]
pub struct Cli {
    /// the VM: its monitor is DIR/N.qmp, its guest agent DIR/N.qga, its pid file DIR/N.pid
    #[arg(long, value_name = "N")]
    pub vmid: Option<u32>,

    /// the directory of the VMs' sockets and pid files (with --vmid)
    #[arg(long, value_name = "DIR", default_value = DEFAULT_RUN_DIR)]
    pub run_dir: PathBuf,

    /// a QMP monitor socket instead of a VM
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// the guest agent's socket (default with --vmid: DIR/N.qga)
    #[arg(long, value_name = "QGA_SOCKET")]
    pub agent: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// print query-backup as JSON
    #[command(after_help = AFTER_PEER)]
    Status,

    /// send backup-cancel
    #[command(after_help = AFTER_PEER)]
    Cancel,

    /// run one QMP command, print its return as JSON (guest-* commands go to the guest
    /// agent)
    #[command(allow_hyphen_values = true, after_help = AFTER_PEER)]
    Qmp {
        /// the QMP command, e.g. query-status
        #[arg(value_name = "COMMAND")]
        name: String,
        /// its arguments, a JSON object
        #[arg(value_name = "JSON")]
        arguments: Option<String>,
    },

    /// the whole backup job of vzdump's QEMU plugin (archive_vma / archive_pbs): VMA into
    /// FILE or to a Proxmox Backup Server, a vzdump-style task log; a VM that does not run
    /// is started with CMD (paused)
    #[command(
        allow_hyphen_values = true,
        after_help = "Needs --vmid (before the command): the running check reads the VM's \
                      pid file. PBS: the password and fingerprint come from $PBS_PASSWORD \
                      and $PBS_FINGERPRINT."
    )]
    Backup(BackupArgs),

    /// query-status every N ms until SIGINT/SIGTERM, then print the longest wait
    #[command(allow_hyphen_values = true, after_help = AFTER_PEER)]
    Probe {
        /// the pause between two queries in milliseconds
        #[arg(long, value_name = "N", default_value_t = 100)]
        interval_ms: u64,
    },

    /// check a VMA archive (zstd, gzip or lzop compressed, or plain; '-' for stdin), keep
    /// its files in DIR, and check that device NAME equals IMAGE byte for byte
    #[command(allow_hyphen_values = true)]
    Verify {
        /// the archive, '-' for stdin
        #[arg(value_name = "ARCHIVE")]
        archive: String,
        /// extract the archive's files into DIR and keep them
        #[arg(long, value_name = "DIR")]
        extract: Option<PathBuf>,
        /// device NAME of the archive must equal IMAGE byte for byte (repeatable)
        #[arg(long, value_name = "NAME=IMAGE")]
        compare: Vec<String>,
    },
}

const AFTER_PEER: &str = "PEER (before the command): --vmid N [--run-dir DIR] | --socket PATH \
                          [--agent QGA_SOCKET]";

/// `backup`'s options.
#[derive(Args, Debug)]
pub struct BackupArgs {
    /// write the VMA archive to FILE
    #[arg(long, value_name = "FILE")]
    pub output: Option<String>,

    /// back up to this Proxmox Backup Server repository instead
    #[arg(long, value_name = "REPOSITORY")]
    pub pbs: Option<String>,

    /// the compressor of the VMA archive
    #[arg(long, value_name = "zstd|gzip|pigz|lzop|none", default_value = "zstd")]
    pub compress: String,

    /// the log lines and flow of qemu-server of 2020 or of today
    #[arg(long, value_name = "seed|current", default_value = "seed")]
    pub style: String,

    /// vzdump's backup mode
    #[arg(long, value_name = "snapshot|suspend|stop", default_value = "snapshot")]
    pub mode: String,

    /// bandwidth limit in KiB/s
    #[arg(long, value_name = "KIB/S")]
    pub bwlimit: Option<u64>,

    /// the devices to back up, comma-separated
    #[arg(long, value_name = "LIST", default_value = "drive-scsi0")]
    pub devlist: String,

    /// the guest config to store (default: a generated one)
    #[arg(long, value_name = "FILE")]
    pub config: Option<String>,

    /// the firewall config to store
    #[arg(long, value_name = "FILE")]
    pub firewall: Option<String>,

    /// the VM's guest agent is enabled: freeze and thaw its filesystems
    #[arg(long)]
    pub agent_enabled: bool,

    /// shell command that starts the VM paused (a VM that does not run is started for the
    /// backup)
    #[arg(long, value_name = "CMD")]
    pub start_cmd: Option<String>,

    /// shell command that stops the VM again after such a backup
    #[arg(long, value_name = "CMD")]
    pub stop_cmd: Option<String>,
}

/// The command as clap builds it (for `--help` and the man pages).
pub fn command() -> clap::Command {
    Cli::command()
}
