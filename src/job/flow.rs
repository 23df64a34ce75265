//! `archive_vma` and `archive_pbs` in the seed's order and today's (see the module docs
//! of [`crate::job`] for the steps).

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use serde_json::Value;

use super::steps::Run;
use super::task::Output;
use super::{Finished, Host, PbsJob, VmaJob};
use crate::backup::{self, PbsParams, VmaParams};
use crate::compressor::{CommandSpec, Compressor, SpawnOptions};
use crate::error::{strerror, Error, Result};
use crate::log::Level;
use crate::qmp::{self, perl_true, timeouts, Peer};
use crate::style::Style;

/// How long the job waits for the compressor after QEMU closed the pipe.
const COMPRESSOR_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Runs a VMA backup of the VM `peer` (given by VM id) as `archive_vma` does, in the
/// style of `options.style`.
pub fn run_vma(
    peer: &Peer,
    options: &qmp::Options,
    job: &VmaJob,
    host: &dyn Host,
) -> Result<Finished> {
    let output = job.output()?;
    let (run, devlist) = prologue(peer, options, &job.task, host)?;
    let mut compressor = None;
    let mut uuid = None;
    let body = vma_body(&run, job, output, devlist, &mut compressor, &mut uuid);
    let body = conclude(&run, body, uuid.is_some());
    let Some(mut compressor) = compressor else {
        return body;
    };
    match body {
        Err(e) => {
            let _ = compressor.kill_and_reap();
            Err(e)
        }
        Ok(done) => {
            let waited =
                compressor.wait_resuming(COMPRESSOR_WAIT, &mut || run.check_signal().is_err());
            waited.map(|()| done).map_err(|e| as_signal(e.into()))
        }
    }
}

/// Steps 3 to 11 of a VMA backup.
fn vma_body(
    run: &Run<'_>,
    job: &VmaJob,
    output: Output<'_>,
    devlist: String,
    compressor: &mut Option<Compressor>,
    uuid: &mut Option<String>,
) -> Result<Finished> {
    run.check_signal()?;
    let mut support = None;
    if run.style == Style::Current {
        run.enforce_running()?;
        // Today's archive_vma needs it only for the performance settings: a warning.
        match run.proxmox_support() {
            Ok(reply) => support = Some(reply),
            Err(e) => run.log(Level::Warn, &e.eval_text()),
        }
    }
    let file;
    let out: BorrowedFd<'_> = match output {
        Output::File(path) => {
            file = create(path)?;
            file.as_fd()
        }
        // SAFETY: the caller passes an open descriptor and keeps it open during the job
        // (VmaJob's `output-fd`).
        Output::Fd(fd) => unsafe { BorrowedFd::borrow_raw(fd) },
    };
    let mut pipe = None;
    if let Some(line) = &job.compressor {
        let command = CommandSpec::Line(line.clone());
        let (child, write_end) = Compressor::spawn(&command, out, &SpawnOptions::default())?;
        *compressor = Some(child);
        pipe = Some(write_end);
    }
    let target = pipe.as_ref().map_or(out, AsFd::as_fd);
    let mut params = VmaParams {
        config_file: Some(run.task.config_file.clone()),
        firewall_file: run.task.existing_firewall_file().map(str::to_string),
        devlist: Some(devlist),
        bwlimit_kib: run.task.bwlimit,
        max_workers: None,
    };
    let frozen = run.freeze();
    if run.style == Style::Current {
        params.max_workers = max_workers(run, support.as_ref());
    }
    let started = run
        .check_signal()
        .and_then(|()| backup::start_vma(run.peer, &run.options, target, &params, None));
    if frozen {
        run.thaw();
    }
    let id = started?;
    *uuid = Some(id.clone());
    if let Some(write_end) = pipe {
        close(write_end)?;
    }
    started_job(run, id, None)
}

/// Runs a backup to a Proxmox Backup Server of the VM `peer` (given by VM id) as
/// `archive_pbs` does, in the style of `options.style`.
pub fn run_pbs(
    peer: &Peer,
    options: &qmp::Options,
    job: &PbsJob,
    host: &dyn Host,
) -> Result<Finished> {
    job.validate()?;
    let (run, devlist) = prologue(peer, options, &job.task, host)?;
    let mut uuid = None;
    let body = pbs_body(&run, &job.pbs, devlist, &mut uuid);
    conclude(&run, body, uuid.is_some())
}

/// Steps 3 to 11 of a PBS backup.
fn pbs_body(
    run: &Run<'_>,
    pbs: &PbsParams,
    devlist: String,
    uuid: &mut Option<String>,
) -> Result<Finished> {
    run.check_signal()?;
    let mut support = None;
    if run.style == Style::Current {
        run.enforce_running()?;
        let reply = pbs_support(run)?;
        if !reply.get("pbs-masterkey").is_some_and(perl_true) && pbs.master_keyfile.is_some() {
            return Err(Error::Backup(
                "master key configured but running QEMU version does not support master keys"
                    .into(),
            ));
        }
        support = Some(reply);
    }
    let frozen = run.freeze();
    let mut params = PbsParams {
        devlist: Some(devlist),
        config_file: Some(run.task.config_file.clone()),
        firewall_file: run.task.existing_firewall_file().map(str::to_string),
        ..pbs.clone()
    };
    let mut timeout = timeouts::PBS_BACKUP_START_SEED;
    if let Some(support) = &support {
        params.speed = run
            .task
            .bwlimit
            .filter(|&kib| kib > 0)
            .map(|kib| i64::try_from(kib.saturating_mul(1024)).unwrap_or(i64::MAX));
        params.max_workers = max_workers(run, Some(support));
        params.encrypt = Some(pbs.keyfile.is_some());
        let bitmap = support.get("pbs-dirty-bitmap").is_some_and(perl_true);
        params.use_dirty_bitmap = (bitmap && run.task.is_template != Some(true)).then_some(true);
        timeout = timeouts::PBS_BACKUP_START;
    }
    let started = run
        .check_signal()
        .and_then(|()| backup::start_pbs(run.peer, &run.options, &params, Some(timeout)));
    if frozen {
        run.thaw();
    }
    let id = started?;
    *uuid = Some(id.clone());
    started_job(run, id, support.as_ref())
}

/// Steps 1 and (seed) 2, before the seed's eval: the devlist, the job's context, the VM
/// running.
fn prologue<'a>(
    peer: &'a Peer,
    options: &qmp::Options,
    task: &'a super::Task,
    host: &'a dyn Host,
) -> Result<(Run<'a>, String)> {
    let devlist = task.devlist()?;
    let run = Run::new(peer, options, task, host)?;
    if run.style == Style::Seed {
        run.enforce_running()?;
    }
    Ok((run, devlist))
}

/// Steps 9 to 11: the start line, the resume, the loop.
fn started_job(run: &Run<'_>, uuid: String, support: Option<&Value>) -> Result<Finished> {
    run.log(Level::Info, &format!("started backup task '{uuid}'"));
    run.resume_after_start()?;
    let progress = run.status_loop(&uuid, support)?;
    Ok(Finished { uuid, progress })
}

/// Steps 12 and 13: log a failure, cancel, (today) resume again, restore the power state.
fn conclude(run: &Run<'_>, body: Result<Finished>, started: bool) -> Result<Finished> {
    let body = body.map_err(as_signal);
    if let Err(e) = &body {
        run.log_error(e);
        if started || run.style == Style::Current {
            run.cancel_job();
        }
        if run.style == Style::Current {
            // Outside today's eval: a failing `cont` here is what archive_* dies with,
            // and the power state is left (a VM that is resumed was running anyway).
            run.resume_after_failure().map_err(as_signal)?;
        }
    }
    run.restore_power_state();
    body
}

/// A signal anywhere is what the seed's handlers die with: `interrupted by signal`.
fn as_signal(e: Error) -> Error {
    match e.is_signal() {
        true => Error::Signal,
        false => e,
    }
}

/// Today's `query-proxmox-support` of `archive_pbs`, which needs it.
fn pbs_support(run: &Run<'_>) -> Result<Value> {
    let reply = match run.proxmox_support() {
        Ok(reply) if perl_true(&reply) => return Ok(reply),
        Ok(_) => "query-proxmox-support returned empty value".to_string(),
        Err(e)
            if e.to_string()
                .contains("The command query-proxmox-support has not been found") =>
        {
            "PBS backups are not supported by the running QEMU version. Please make sure \
             you've installed the latest version and the VM has been restarted."
                .to_string()
        }
        Err(e) => format!(
            "QMP command query-proxmox-support failed - {}",
            e.eval_text()
        ),
    };
    Err(Error::Backup(reply))
}

/// Today's `add_backup_performance_options` for `max-workers`, with its warnings.
fn max_workers(run: &Run<'_>, support: Option<&Value>) -> Option<i64> {
    let workers = run.task.max_workers?;
    let Some(support) = support else {
        run.log(
            Level::Warn,
            "ignoring setting(s): max-workers - issue checking if supported",
        );
        return None;
    };
    if support.get("backup-max-workers").is_some_and(perl_true) {
        Some(workers)
    } else {
        run.log(
            Level::Warn,
            "ignoring 'max-workers' setting - not supported by running QEMU",
        );
        None
    }
}

/// The archive file, as Perl's `IO::File->new($filename, "w")` creates it.
fn create(path: &str) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o666)
        .open(path)
        .map_err(|e| {
            let reason = strerror(e.raw_os_error().unwrap_or(libc::EIO));
            Error::Backup(format!("unable to open file '{path}' - {reason}"))
        })
}

/// Closes the job's copy of the pipe's write end, so that the compressor sees the end once
/// QEMU closes its own.
fn close(write_end: OwnedFd) -> Result<()> {
    // SAFETY: the descriptor is owned and closed exactly once here.
    match unsafe { libc::close(write_end.into_raw_fd()) } {
        0 => Ok(()),
        _ => Err(Error::Backup("close output file handle failed".into())),
    }
}
