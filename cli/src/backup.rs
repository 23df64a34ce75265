//! A VMA backup into a file, with the task log of vzdump's QEMU plugin (seed flow:
//! compressor pipe, `getfd` + `backup`, close our write end, status loop, compressor wait;
//! on any error `backup-cancel` and kill the compressor).

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use vzdump_qemu::backup::{self, VmaParams};
use vzdump_qemu::compressor::{CommandSpec, Compressor, SpawnOptions};
use vzdump_qemu::log::Level;
use vzdump_qemu::progress::Poller;
use vzdump_qemu::progress::Style;
use vzdump_qemu::qmp::{Options, Peer};
use vzdump_qemu::Error;

use crate::{signals, Args, Failure};

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

pub fn run(peer: &Peer, args: &mut Args) -> Result<(), Failure> {
    let mut output = None;
    let mut compress = "zstd".to_string();
    let mut style = Style::Seed;
    let mut params = VmaParams::default();
    while let Some(arg) = args.shift() {
        match arg.as_str() {
            "--output" => output = Some(args.value("--output")?),
            "--compress" => compress = args.value("--compress")?,
            "--style" => {
                style = match args.value("--style")?.as_str() {
                    "seed" => Style::Seed,
                    "current" => Style::Current,
                    other => return Err(Failure(format!("unknown style '{other}'"), 2)),
                }
            }
            "--bwlimit" => params.bwlimit_kib = Some(args.parsed("--bwlimit")?),
            "--devlist" => params.devlist = Some(args.value("--devlist")?),
            "--config" => params.config_file = Some(args.value("--config")?),
            "--firewall" => params.firewall_file = Some(args.value("--firewall")?),
            other => return Err(Args::unknown(other)),
        }
    }
    let output = output.ok_or_else(|| Failure("backup needs --output FILE".into(), 2))?;
    let compressor = compressor_command(&compress)?;
    signals::install();

    let started = Instant::now();
    let file = File::create(&output)
        .map_err(|e| Failure(format!("unable to open file '{output}' - {e}"), 1))?;
    let mut child = None;
    let outcome = archive(peer, &file, compressor, &params, style, &mut child);
    match outcome {
        Ok(()) => {
            if let Some(mut c) = child {
                c.wait(Duration::from_secs(600))?;
            }
            let size = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
            log(
                Level::Info,
                &format!(
                    "archive file size: {} in {:.1} s",
                    vzdump_qemu::progress::render_bytes(size, 2),
                    started.elapsed().as_secs_f64()
                ),
            );
            Ok(())
        }
        Err(e) => {
            if let Some(c) = child {
                let _ = c.kill_and_reap();
            }
            Err(Failure(e, 1))
        }
    }
}

/// Everything inside the seed's `eval`; on failure the error is logged, the job (if
/// started) cancelled, and the error returned for the exit status.
fn archive(
    peer: &Peer,
    file: &File,
    compressor: Option<&str>,
    params: &VmaParams,
    style: Style,
    child: &mut Option<Compressor>,
) -> Result<(), String> {
    let options = Options::default();
    let fail = |e: Error| {
        let text = if e.is_interrupted() {
            "interrupted by signal".to_string()
        } else {
            e.to_string()
        };
        log(Level::Err, &text);
        text
    };
    let write_end: Option<OwnedFd> = match compressor {
        Some(cmd) => {
            let spec = CommandSpec::Line(cmd.to_string());
            let (c, w) = Compressor::spawn(&spec, file.as_fd(), &SpawnOptions::default())
                .map_err(|e| fail(e.into()))?;
            *child = Some(c);
            Some(w)
        }
        None => None,
    };
    let target = write_end.as_ref().map_or(file.as_fd(), |w| w.as_fd());
    let uuid = backup::start_vma(peer, &options, target, params, None).map_err(fail)?;
    drop(write_end); // QEMU has its copy; the compressor sees EOF when QEMU closes it.
    log(Level::Info, &format!("started backup task '{uuid}'"));
    let mut poller = Poller::new(peer, &options, &uuid, style, None);
    let mut sink = log;
    let mut cancelled = || signals::caught().is_some();
    match poller.run(&mut sink, &mut cancelled) {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = match e {
                Error::Cancelled => "interrupted by signal".to_string(),
                e => return Err(abort(peer, &options, fail(e))),
            };
            log(Level::Err, &text);
            Err(abort(peer, &options, text))
        }
    }
}

fn abort(peer: &Peer, options: &Options, text: String) -> String {
    backup::abort_job(peer, options, &mut log);
    text
}
