//! The command line as clap declares it: every flag with its help text, the source of both
//! `--help` and the man page (`mangen/` includes this file, so it uses nothing but clap and
//! std). Values are kept as the strings given; `args.rs` checks them, with its own texts.

use clap::{Arg, ArgAction, CommandFactory, Parser};

/// pve-qmp-sim: simulator of Proxmox QEMU's QMP monitor (backup, query-backup,
/// backup-cancel, getfd, ...) with fault injection. One client at a time, like QEMU.
#[derive(Parser, Debug)]
#[command(
    name = "pve-qmp-sim",
    version,
    // `--version` is the simulated QEMU's version (a flag older than clap here).
    disable_version_flag = true,
    // As with the hand-rolled parser before: a value may start with '-', and of a flag
    // given twice the last one counts.
    allow_hyphen_values = true,
    args_override_self = true,
    max_term_width = 100,
    override_usage = "pve-qmp-sim --socket PATH [OPTIONS]\n       \
                      pve-qmp-sim --dump-gen-disk NAME=SIZE PATH\n       \
                      pve-qmp-sim --help",
    after_help = AFTER_HELP,
)]
pub struct Cli {
    /// unix socket to listen on (required); a stale socket file is replaced, the file is
    /// removed on exit
    #[arg(long, value_name = "PATH")]
    pub socket: Option<String>,

    /// raw image file PATH as block device NAME (e.g. drive-scsi0); repeatable
    #[arg(long, value_name = "NAME=PATH")]
    pub disk: Vec<String>,

    /// generated device NAME of SIZE bytes (suffix K, M, G or T, binary): pseudo-random
    /// data in some regions, zeros and holes elsewhere, derived from NAME only; repeatable
    #[arg(long, value_name = "NAME=SIZE")]
    pub gen_disk: Vec<String>,

    /// cap of the backup progress (bytes read per second, suffix K/M/G/T allowed); default
    /// unlimited (PBS: 1G); a positive 'speed' argument of 'backup' lowers it further
    #[arg(long, value_name = "BYTES_PER_SEC")]
    pub rate: Option<String>,

    /// VMA: publish transferred/zero-bytes after every 64 KiB cluster. Default, as
    /// pve-qemu shows it: 1 MiB from the start (the very first query-backup after 'backup'
    /// shows it), then 1 MiB + k*2 MiB once the copy got there (stalls between bursts), the
    /// full count when all clusters are copied. PBS jobs always step in 4 MiB chunks
    #[arg(long)]
    pub smooth_progress: bool,

    /// package string of the greeting
    #[arg(long, value_name = "STR", default_value = "pve-qemu-kvm_11.0.0-2")]
    pub package: String,

    /// QEMU version of the greeting
    #[arg(long, value_name = "X.Y.Z", default_value = "11.0.0")]
    pub version: String,

    /// initial VM run state
    #[arg(long, value_name = "prelaunch|running", default_value = "running")]
    pub state: String,

    /// behave like pve-qemu of mid-2020: query-backup without 'finishing', 'dirty' and
    /// 'reused'; error text 'previous backup not finished'
    #[arg(long)]
    pub seed_era: bool,

    /// PBS jobs only: after the last chunk, stay active with finishing=true for N ms (the
    /// manifest upload). VMA jobs never report finishing=true, as with pve-qemu: while the
    /// writer flushes into a full pipe they stay active with transferred == total and
    /// finishing=false, and are done once the fd is closed
    #[arg(long, value_name = "N")]
    pub finishing_ms: Option<String>,

    /// delay the reply of a PBS 'backup' by N ms (connection setup)
    #[arg(long, value_name = "N")]
    pub pbs_connect_delay_ms: Option<String>,

    /// query-proxmox-support and query-pbs-bitmap-info do not exist
    #[arg(long)]
    pub no_proxmox_support: bool,

    /// append every parsed request to FILE, one compact JSON line each
    #[arg(long, value_name = "FILE")]
    pub record: Option<String>,

    /// send a SIM_TICK event (data: {"query": N}) before every query-backup reply; real
    /// QEMU has no such event. Events QEMU sends are always sent: STOP, RESUME, SHUTDOWN,
    /// and for the backup jobs (id = drive name) JOB_STATUS_CHANGE, BLOCK_JOB_COMPLETED and
    /// BLOCK_JOB_CANCELLED
    #[arg(long)]
    pub sim_tick: bool,

    /// like QEMU's -pidfile: write the pid (decimal, newline) to PATH once the socket
    /// listens (via a temporary file and rename), remove it on quit, SIGTERM and SIGINT;
    /// after SIGKILL or a crash it stays behind. With this flag the process re-executes
    /// itself as 'qemu-system-pve-sim --pidfile PATH ...' (same pid, same arguments,
    /// '--pidfile=PATH' split in two), because qemu-server's vm_running_locally accepts a
    /// pid file only if the process's name (its first argument, argv 0) ends in 'kvm' or
    /// 'qemu-system-*' and its command line has '-pidfile'/'--pidfile' followed by the path
    /// as an argument of its own
    #[arg(long, value_name = "PATH")]
    pub pidfile: Option<String>,

    /// write the data of generated device NAME of SIZE to PATH, exit
    #[arg(
        long,
        num_args = 2,
        value_names = ["NAME=SIZE", "PATH"]
    )]
    pub dump_gen_disk: Option<Vec<String>>,

    /// exit at once with code 9 when the backup reaches PERCENT
    #[arg(long, value_name = "PERCENT", help_heading = FAULTS)]
    pub fault_die_at: Option<String>,

    /// fail the job at PERCENT with MSG (default 'job failed with err -5 - Input/output
    /// error')
    #[arg(long, value_name = "PERCENT[:MSG]", help_heading = FAULTS)]
    pub fault_error_at: Option<String>,

    /// fail the VMA stream write at PERCENT as if with EIO
    #[arg(long, value_name = "PERCENT", help_heading = FAULTS)]
    pub fault_write_error_at: Option<String>,

    /// query-backup reports another uuid than 'backup' returned
    #[arg(long, help_heading = FAULTS)]
    pub fault_wrong_uuid: bool,

    /// never reply to CMD and stop reading that connection (repeatable)
    #[arg(long, value_name = "CMD", help_heading = FAULTS)]
    pub fault_hang: Vec<String>,

    /// run CMD but reply with bytes that are not JSON (repeatable)
    #[arg(long, value_name = "CMD", help_heading = FAULTS)]
    pub fault_garbage: Vec<String>,

    /// delay every reply by N ms
    #[arg(long, value_name = "N", help_heading = FAULTS)]
    pub fault_slow_ms: Option<String>,

    /// at done, report transferred = total - 65536
    #[arg(long, help_heading = FAULTS)]
    pub fault_count_mismatch: bool,
}

const FAULTS: &str = "Faults (PERCENT is 0..100 of the bytes to back up)";

const AFTER_HELP: &str = "\
Exit codes: 0 normal end (quit, SIGTERM, SIGINT), 1 runtime error, 2 usage error,
9 --fault-die-at. Killed by SIGSEGV (no core file, no reply) when a 'backup' devlist names
a device twice, e.g. 'drive-scsi0;drive-scsi0': pve-qemu 10.0.2 crashes there while
creating the jobs (after the target and config checks); an empty name is still
'Device '' not found'.";

/// The command as clap builds it (for `--help` and the man page), with `-V` for the
/// simulator's own version.
pub fn command() -> clap::Command {
    Cli::command().arg(
        Arg::new("program-version")
            .short('V')
            .action(ArgAction::Version)
            .help("print the simulator's own version ('--version' is the simulated QEMU's)"),
    )
}
