//! `vzdump-qemu`: a small tool for administrators and scripts on top of the library.
//!
//! ```text
//! vzdump-qemu [PEER] status                 query-backup, as JSON
//! vzdump-qemu [PEER] cancel                 backup-cancel
//! vzdump-qemu [PEER] qmp COMMAND [JSON]     any QMP command, one connection
//! vzdump-qemu --vmid N backup (--output FILE | --pbs REPO) [--compress C] [--style S]
//!             [--mode M] [--bwlimit KIB] [--devlist LIST] [--config FILE] [--firewall FILE]
//!             [--agent-enabled] [--start-cmd CMD] [--stop-cmd CMD]
//! vzdump-qemu [PEER] probe [--interval-ms N]
//! vzdump-qemu verify ARCHIVE [--extract DIR] [--compare NAME=IMAGE]...
//! PEER: --vmid N [--run-dir DIR] | --socket PATH [--agent QGA_SOCKET]
//! ```

mod backup;
mod probe;
mod signals;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use vzdump_qemu::qmp::{self, Options, Peer};

const USAGE: &str = "usage:
  vzdump-qemu PEER status                 print query-backup as JSON
  vzdump-qemu PEER cancel                 send backup-cancel
  vzdump-qemu PEER qmp COMMAND [JSON]     run one QMP command, print its return as JSON
                                          (guest-* commands go to the guest agent)
  vzdump-qemu --vmid N [--run-dir DIR] backup (--output FILE | --pbs REPOSITORY)
                 [--compress zstd|gzip|pigz|lzop|none] [--style seed|current]
                 [--mode snapshot|suspend|stop] [--bwlimit KIB/S] [--devlist LIST]
                 [--config FILE] [--firewall FILE] [--agent-enabled]
                 [--start-cmd CMD] [--stop-cmd CMD]
                                          the whole backup job of vzdump's QEMU plugin
                                          (archive_vma / archive_pbs): VMA into FILE or
                                          to a Proxmox Backup Server ($PBS_PASSWORD,
                                          $PBS_FINGERPRINT), a vzdump-style task log; a VM
                                          that does not run is started with CMD (paused)
  vzdump-qemu PEER probe [--interval-ms N]
                                          query-status every N ms (default 100) until
                                          SIGINT/SIGTERM, then print the longest wait
  vzdump-qemu verify ARCHIVE [--extract DIR] [--compare NAME=IMAGE]...
                                          check a VMA archive (zstd, gzip or lzop
                                          compressed, or plain; '-' for stdin), keep its
                                          files in DIR, and check that device NAME equals
                                          IMAGE byte for byte
PEER: --vmid N [--run-dir DIR] | --socket PATH [--agent QGA_SOCKET]";

/// A command-line failure: message and exit code.
pub struct Failure(pub String, pub u8);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string(), 1)
    }
}

/// A usage error: the message and the usage text, exit code 2.
pub fn usage(msg: &str) -> Failure {
    Failure(format!("{msg}\n{USAGE}"), 2)
}

/// The remaining arguments, consumed front to back.
pub struct Args(std::collections::VecDeque<String>);

impl Args {
    /// The next argument, if any.
    pub fn shift(&mut self) -> Option<String> {
        self.0.pop_front()
    }

    /// The value of option `flag`.
    pub fn value(&mut self, flag: &str) -> Result<String, Failure> {
        self.shift()
            .ok_or_else(|| usage(&format!("{flag} needs a value")))
    }

    /// The value of option `flag`, parsed.
    pub fn parsed<T: std::str::FromStr>(&mut self, flag: &str) -> Result<T, Failure> {
        let v = self.value(flag)?;
        v.parse()
            .map_err(|_| usage(&format!("{flag}: invalid value '{v}'")))
    }

    /// Fails on an unexpected option.
    pub fn unknown(arg: &str) -> Failure {
        usage(&format!("unknown argument '{arg}'"))
    }
}

fn main() -> ExitCode {
    let mut args = Args(std::env::args().skip(1).collect());
    match run(&mut args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(msg, code)) => {
            eprintln!("vzdump-qemu: {msg}");
            ExitCode::from(code)
        }
    }
}

fn run(args: &mut Args) -> Result<(), Failure> {
    let mut vmid: Option<u32> = None;
    let mut run_dir = PathBuf::from(qmp::DEFAULT_RUN_DIR);
    let mut socket: Option<PathBuf> = None;
    let mut agent: Option<PathBuf> = None;
    loop {
        let Some(arg) = args.shift() else {
            return Err(usage("missing command"));
        };
        match arg.as_str() {
            "--vmid" => vmid = Some(args.parsed("--vmid")?),
            "--run-dir" => run_dir = args.value("--run-dir")?.into(),
            "--socket" => socket = Some(args.value("--socket")?.into()),
            "--agent" => agent = Some(args.value("--agent")?.into()),
            "-h" | "--help" | "help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "verify" => return verify::run(args),
            command => {
                let (peer, vm_agent) = match (vmid, socket) {
                    (Some(id), None) => (
                        Peer::vmid_in(id, &run_dir),
                        Some(Peer::qga_vmid_in(id, &run_dir)),
                    ),
                    (None, Some(path)) => (Peer::path(path), None),
                    _ => return Err(usage("give exactly one of --vmid and --socket")),
                };
                let agent = agent.map(Peer::qga_path).or(vm_agent);
                return peer_command(command, &peer, agent.as_ref(), args);
            }
        }
    }
}

fn peer_command(
    command: &str,
    peer: &Peer,
    agent: Option<&Peer>,
    args: &mut Args,
) -> Result<(), Failure> {
    let options = Options::default();
    match command {
        "status" => {
            let reply = vzdump_qemu::backup::query_raw(peer, &options)?;
            println!("{}", serde_json::to_string_pretty(&reply)?);
        }
        "cancel" => vzdump_qemu::backup::cancel(peer, &options)?,
        "qmp" => {
            let name = args.shift().ok_or_else(|| usage("qmp needs a command"))?;
            let arguments = match args.shift() {
                Some(json) => Some(serde_json::from_str(&json)?),
                None => None,
            };
            if name.starts_with("guest-") && agent.is_none() {
                return Err(usage("guest-* commands need --vmid or --agent"));
            }
            // qemu-server's mon_cmd: guest-* commands go to the guest agent.
            let reply =
                vzdump_qemu::monitor::mon_cmd(peer, agent, &name, arguments, None, None, &options)?;
            println!("{}", serde_json::to_string_pretty(&reply)?);
        }
        "backup" => return backup::run(peer, args),
        "probe" => return probe::run(peer, args),
        other => return Err(usage(&format!("unknown command '{other}'"))),
    }
    match args.shift() {
        Some(extra) => Err(Args::unknown(&extra)),
        None => Ok(()),
    }
}
