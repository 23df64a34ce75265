//! The whole backup of a running (or paused-started) VM as one call: qemu-server's
//! `archive_vma` and `archive_pbs` (proxmox/qemu-server `src/PVE/VZDump/QemuServer.pm`,
//! and the 2020 seed's versions of them), with their power-state helpers
//! (`enforce_vm_running_for_backup`, `resume_vm_after_job_start`,
//! `restore_vm_power_state`), the guest freeze and thaw and `mon_backup_cancel`.
//!
//! The seed's order ([`Style::Seed`](crate::Style::Seed)), each step's lines as the seed logs them:
//! 1. the devlist from the task's disks (`implement me (type '<type>')` for other kinds),
//!    before anything else;
//! 2. the VM must run: if it does not, `starting kvm to execute backup task` and the
//!    caller starts it paused ([`Host::start_vm_paused`]); a failure ends the job as it is;
//! 3. from here a signal ends the job with `interrupted by signal`, unless the peer's
//!    signal check ([`crate::qmp::Options::on_signal`]) lets the wait it interrupted go on;
//! 4. VMA: open the output file (`unable to open file '<file>' - <reason>`) unless the
//!    caller passes a descriptor, and start the compressor behind a pipe;
//! 5. freeze the guest's filesystems if asked (agent configured, not stop mode, VM was
//!    running): `issuing guest-agent 'fs-freeze' command`, or the skip line if the agent
//!    does not answer;
//! 6. start the backup (VMA: `getfd` and `backup` within 30 s; PBS: `backup` with 60 s);
//! 7. thaw if a freeze was issued (`issuing guest-agent 'fs-thaw' command`), before a
//!    start failure is passed on;
//! 8. VMA: close the pipe's write end; `got no uuid for backup task` if QEMU gave none;
//! 9. `started backup task '<uuid>'`;
//! 10. resume the VM if it was running (`resuming VM again`, or `resuming VM again after
//!     <n> seconds` in stop mode; `cont`);
//! 11. the status-poll loop;
//! 12. on any failure of steps 3 to 11: log it at error level, cancel the job if it
//!     started (`aborting backup job`); once decided, the cancel runs to its end
//!     whatever signals arrive meanwhile (as do today's resume here and the status query
//!     of 13);
//! 13. restore the power state: a VM that was not running is stopped by the caller
//!     ([`Host::stop_vm`], `stopping kvm after backup task`) if QEMU is still in
//!     `prelaunch`, else kept (`kvm status changed after backup ('<status>') - keep VM
//!     running`); failures here are warnings;
//! 14. VMA: on failure kill the compressor, else wait for it (`<command> failed - wrong
//!     exit status <code>`).
//!
//! Today's order ([`Style::Current`](crate::Style::Current)) differs where today's qemu-server does: step 2 runs
//! after step 3, so its failure is logged and followed by 12; `query-proxmox-support`
//! comes next (a VMA backup warns if it fails; a PBS backup needs it and checks the master
//! key support); the freeze also skips a VM that was paused and one whose agent options
//! disable it (`skipping guest-agent 'fs-freeze', disabled in VM options`) and waits for a
//! slow freeze with `guest-fsfreeze-status`; `max-workers` is passed when QEMU supports it
//! (else a warning); the PBS start sends `encrypt`, `use-dirty-bitmap`, `speed` and waits
//! 125 s; step 10 honours a paused VM (`cont` with 45 s); step 12 always cancels, then
//! resumes the VM again; the PBS status loop logs the dirty-bitmap lines.
//!
//! Not part of the job, as they need the Proxmox host (its storage, configuration and
//! daemons): the diskless and template cases that run `vma create` or
//! `proxmox-backup-client` instead of QEMU, the TPM state drive, fleecing images and
//! qmeventd's registration. A task with them is the caller's to run piecewise.

mod flow;
mod power;
mod steps;
mod task;

pub use flow::{run_pbs, run_vma};
pub use power::{Known, PowerState};
pub use task::{Disk, Mode, PbsJob, Task, VmaJob};

use crate::log::Level;
use crate::progress::Completed;

/// What the job needs from its caller: the log sink, the VM's start and stop (qemu-server's
/// `vm_start` with `paused` and `vm_stop`, which are `qm`'s work, not the library's) and
/// a cancel check. Methods take `&self`: the job calls them one at a time.
pub trait Host {
    /// One line for the task log.
    fn log(&self, level: Level, text: &str);
    /// Starts the VM paused (`prelaunch`), as `enforce_vm_running_for_backup` does. The
    /// error's text is the job's failure.
    fn start_vm_paused(&self) -> Result<(), String>;
    /// Stops the VM again after a backup it was started for. The error's text is logged as
    /// a warning.
    fn stop_vm(&self) -> Result<(), String>;
    /// True when the job should end (`interrupted by signal`); asked between steps and at
    /// least every 100 ms in the status loop.
    fn cancelled(&self) -> bool;
}

/// A finished job.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// The QEMU job's UUID.
    pub uuid: String,
    /// The status loop's record (qemu-server's `$task->{size}` is `progress.total`).
    pub progress: Completed,
}
