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
mod cli;
mod probe;
mod signals;
mod verify;

use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::FromArgMatches;
use vzdump_qemu::qmp::{Options, Peer};

use crate::cli::{Cli, Command};

/// A command-line failure: message and exit code.
pub struct Failure(pub String, pub u8);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string(), 1)
    }
}

/// A usage error: the message and the usage text, exit code 2.
pub fn usage(msg: &str) -> Failure {
    Failure(format!("{msg}\n{}", cli::command().render_help()), 2)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(msg, code)) => {
            eprintln!("vzdump-qemu: {msg}");
            ExitCode::from(code)
        }
    }
}

fn run() -> Result<(), Failure> {
    let matches = match cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            print!("{e}");
            return Ok(());
        }
        Err(e) => return Err(clap_failure(&e)),
    };
    let cli = Cli::from_arg_matches(&matches)?;
    let command = cli.command.ok_or_else(|| usage("missing command"))?;
    if let Command::Verify {
        archive,
        extract,
        compare,
    } = command
    {
        return verify::run(&archive, extract, &compare);
    }
    let (peer, vm_agent) = match (cli.vmid, cli.socket) {
        (Some(id), None) => (
            Peer::vmid_in(id, &cli.run_dir),
            Some(Peer::qga_vmid_in(id, &cli.run_dir)),
        ),
        (None, Some(path)) => (Peer::path(path), None),
        _ => return Err(usage("give exactly one of --vmid and --socket")),
    };
    let agent = cli.agent.map(Peer::qga_path).or(vm_agent);
    peer_command(command, &peer, agent.as_ref())
}

/// A clap error in the texts of the hand-rolled parser this replaced.
fn clap_failure(e: &clap::Error) -> Failure {
    let context = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(s)) => s.join(" "),
        _ => String::new(),
    };
    // "--vmid <N>": the flag alone.
    let arg = context(ContextKind::InvalidArg);
    let flag = arg.split(' ').next().unwrap_or_default();
    match e.kind() {
        ErrorKind::InvalidSubcommand => usage(&format!(
            "unknown command '{}'",
            context(ContextKind::InvalidSubcommand)
        )),
        ErrorKind::UnknownArgument => usage(&format!("unknown argument '{arg}'")),
        ErrorKind::InvalidValue => usage(&format!("{flag} needs a value")),
        ErrorKind::ValueValidation => usage(&format!(
            "{flag}: invalid value '{}'",
            context(ContextKind::InvalidValue)
        )),
        ErrorKind::MissingRequiredArgument if arg == "<ARCHIVE>" => {
            Failure("verify needs an ARCHIVE".into(), 2)
        }
        ErrorKind::MissingRequiredArgument if arg == "<COMMAND>" => usage("qmp needs a command"),
        _ => usage(e.to_string().trim_end().trim_start_matches("error: ")),
    }
}

fn peer_command(command: Command, peer: &Peer, agent: Option<&Peer>) -> Result<(), Failure> {
    let options = Options::default();
    match command {
        Command::Status => {
            let reply = vzdump_qemu::backup::query_raw(peer, &options)?;
            println!("{}", serde_json::to_string_pretty(&reply)?);
        }
        Command::Cancel => vzdump_qemu::backup::cancel(peer, &options)?,
        Command::Qmp { name, arguments } => {
            let arguments = match arguments {
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
        Command::Backup(args) => return backup::run(peer, &args),
        Command::Probe { interval_ms } => return probe::run(peer, interval_ms),
        Command::Verify { .. } => unreachable!("verify needs no peer"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_run_dir_is_the_librarys() {
        assert_eq!(
            super::cli::DEFAULT_RUN_DIR,
            vzdump_qemu::qmp::DEFAULT_RUN_DIR
        );
    }

    #[test]
    fn the_command_line_is_consistent() {
        super::cli::command().debug_assert();
    }
}
