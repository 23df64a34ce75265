//! A backup through the library's whole job (`vzdump_qemu::job`), as vzdump's QEMU plugin
//! runs `archive_vma` / `archive_pbs`, with its task log on stdout.

use std::time::Instant;

use serde_json::{json, Value};
use vzdump_qemu::job::{self, Host, PbsJob, VmaJob};
use vzdump_qemu::log::Level;
use vzdump_qemu::qmp::{Options, Peer};
use vzdump_qemu::{loose, Style};

use crate::cli::BackupArgs;
use crate::{signals, usage, Failure};

/// The compressor strings vzdump uses (pve-manager's `compressor_info`).
fn compressor_command(name: &str) -> Result<Option<&'static str>, Failure> {
    Ok(match name {
        "zstd" => Some("zstd --threads=2"),
        "gzip" => Some("gzip --rsyncable"),
        "pigz" => Some("pigz -p 2 --rsyncable"),
        "lzop" | "lzo" => Some("lzop"),
        "none" | "0" => None,
        other => return Err(Failure(format!("unknown compressor '{other}'"), 2)),
    })
}

fn log(level: Level, line: &str) {
    let prefix = match level {
        Level::Info => "INFO",
        Level::Warn => "WARN",
        Level::Err => "ERROR",
    };
    println!("{prefix}: {line}");
}

/// The tool as the job's caller: the task log on stdout, the VM started and stopped by
/// the commands given (`--start-cmd`, `--stop-cmd`), a caught signal as the cancel.
struct Tool {
    start_cmd: Option<String>,
    stop_cmd: Option<String>,
}

/// Runs `cmd` with `/bin/sh -c`; its failure as the job wants it.
fn shell(cmd: &Option<String>, what: &str) -> Result<(), String> {
    let cmd = cmd
        .as_deref()
        .ok_or_else(|| format!("the VM is not running and no --{what}-cmd was given"))?;
    let status = std::process::Command::new("/bin/sh")
        .args(["-c", cmd])
        .status()
        .map_err(|e| format!("command '{cmd}' failed: {e}"))?;
    match status.code() {
        Some(0) => Ok(()),
        code => Err(format!("command '{cmd}' failed: exit code {code:?}")),
    }
}

impl Host for Tool {
    fn log(&self, level: Level, text: &str) {
        log(level, text);
    }
    fn start_vm_paused(&self) -> Result<(), String> {
        shell(&self.start_cmd, "start")
    }
    fn stop_vm(&self) -> Result<(), String> {
        shell(&self.stop_cmd, "stop")
    }
    fn cancelled(&self) -> bool {
        signals::caught().is_some()
    }
}

pub fn run(peer: &Peer, args: &BackupArgs) -> Result<(), Failure> {
    let (output, pbs) = (&args.output, &args.pbs);
    let style = match args.style.as_str() {
        "seed" => Style::Seed,
        "current" => Style::Current,
        other => return Err(Failure(format!("unknown style '{other}'"), 2)),
    };
    // The task's members (the job's JSON names); the optional ones only when given.
    let mut task = json!({"mode": args.mode});
    let optional = [
        ("agent", args.agent_enabled.then_some(Value::from(true))),
        ("bwlimit", args.bwlimit.map(Value::from)),
        ("config-file", args.config.clone().map(Value::from)),
        ("firewall-file", args.firewall.clone().map(Value::from)),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            task[key] = value;
        }
    }
    let tool = Tool {
        start_cmd: args.start_cmd.clone(),
        stop_cmd: args.stop_cmd.clone(),
    };
    let Some(vmid) = peer.vm_id() else {
        return Err(usage(
            "backup needs --vmid: the running check reads the VM's pid file",
        ));
    };
    task["disks"] = args
        .devlist
        .split(',')
        .map(|d| json!({"type": "file", "qmdevice": d}))
        .collect();
    let config = tempfile_config(&mut task)?;
    let options = Options {
        style,
        ..Options::default()
    };
    signals::install();
    let started = Instant::now();
    let outcome = match (output, pbs) {
        (Some(output), None) => {
            let job: VmaJob = loose::from_json(json!({
                "task": task, "output-file": output,
                "compressor": compressor_command(&args.compress)?,
            }))?;
            job::run_vma(peer, &options, &job, &tool)
        }
        (None, Some(repository)) => {
            let mut server = json!({
                "backup-file": repository, "backup-id": vmid.to_string(),
                "backup-time": std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            });
            for (key, var) in [
                ("password", "PBS_PASSWORD"),
                ("fingerprint", "PBS_FINGERPRINT"),
            ] {
                if let Ok(value) = std::env::var(var) {
                    server[key] = Value::from(value);
                }
            }
            let job: PbsJob = loose::from_json(json!({"task": task, "pbs": server}))?;
            job::run_pbs(peer, &options, &job, &tool)
        }
        _ => {
            return Err(usage(
                "backup needs exactly one of --output FILE and --pbs REPOSITORY",
            ))
        }
    };
    drop(config);
    outcome.map_err(|e| Failure(e.to_string(), 1))?;
    if let Some(output) = output {
        let size = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
        log(
            Level::Info,
            &format!(
                "archive file size: {} in {:.1} s",
                vzdump_qemu::progress::render_bytes(size, 2),
                started.elapsed().as_secs_f64()
            ),
        );
    }
    Ok(())
}

/// Without `--config`, a minimal guest config in a temporary file (removed on drop), as
/// vzdump's assemble step leaves one in the task's directory.
fn tempfile_config(task: &mut Value) -> Result<Option<TempConfig>, Failure> {
    if task.get("config-file").is_some() {
        return Ok(None);
    }
    let path = std::env::temp_dir().join(format!("vzdump-qemu-{}.conf", std::process::id()));
    std::fs::write(&path, "# written by vzdump-qemu backup\n")
        .map_err(|e| Failure(format!("unable to write '{}' - {e}", path.display()), 1))?;
    task["config-file"] = Value::from(path.display().to_string());
    Ok(Some(TempConfig(path)))
}

/// A temporary file, removed on drop.
struct TempConfig(std::path::PathBuf);

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
