//! The job's steps around the backup start, each with qemu-server's lines and decisions:
//! the guest freeze and thaw, the cancel, the status loop; the power state in
//! [`PowerState`].

use std::cell::RefCell;

use serde_json::Value;

use super::{Host, Mode, PowerState, Task};
use crate::backup;
use crate::error::{Error, Result};
use crate::log::Level;
use crate::progress::{Completed, Poller};
use crate::qga;
use crate::qmp::{self, Peer};
use crate::style::Style;

/// One job's view of its VM, its caller and what it learnt on the way.
pub(super) struct Run<'a> {
    pub(super) peer: &'a Peer,
    pub(super) options: qmp::Options,
    pub(super) style: Style,
    pub(super) task: &'a Task,
    host: &'a dyn Host,
    agent: Peer,
    agent_options: qga::Options,
    power: RefCell<PowerState>,
}

impl<'a> Run<'a> {
    /// The job's context on the VM `peer` (given by VM id: the running check needs its pid
    /// file); `options.style` decides whose flow runs.
    pub(super) fn new(
        peer: &'a Peer,
        options: &qmp::Options,
        task: &'a Task,
        host: &'a dyn Host,
    ) -> Result<Self> {
        let Some(agent) = peer.agent() else {
            return Err(Error::InvalidArgument(
                "a backup job needs a VM given by its id, not a socket path".into(),
            ));
        };
        let power = PowerState::new(
            peer,
            options,
            task.vm_was_running == Some(true),
            task.vm_was_paused == Some(true),
            task.vm_stop_time,
        )?;
        let agent_options = qga::Options::for_monitor(options);
        Ok(Run {
            peer,
            options: options.clone(),
            style: options.style,
            task,
            host,
            agent,
            agent_options,
            power: RefCell::new(power),
        })
    }

    /// One line to the caller's log.
    pub(super) fn log(&self, level: Level, text: &str) {
        let text = text.trim_end_matches('\n');
        self.host.log(level, &crate::log::one_line(text));
    }

    /// The caller's `logerr($err)` of a failure.
    pub(super) fn log_error(&self, error: &Error) {
        self.log(Level::Err, &error.eval_text());
    }

    /// A log sink for the library's other parts.
    pub(super) fn sink(&self) -> impl FnMut(Level, &str) + '_ {
        |level, text| self.log(level, text)
    }

    /// Where the seed's signal handlers would have died: the cancel check said stop.
    pub(super) fn check_signal(&self) -> Result<()> {
        match self.host.cancelled() {
            true => Err(Error::Signal),
            false => Ok(()),
        }
    }

    /// Step 2 ([`PowerState::enforce_running`]).
    pub(super) fn enforce_running(&self) -> Result<()> {
        self.power.borrow_mut().enforce_running(self.host)
    }

    /// Step 10 ([`PowerState::resume_after_start`]).
    pub(super) fn resume_after_start(&self) -> Result<()> {
        self.power.borrow_mut().resume_after_start(self.host)
    }

    /// Step 12's resume of today's style ([`PowerState::resume_after_failure`]).
    pub(super) fn resume_after_failure(&self) -> Result<()> {
        self.power.borrow_mut().resume_after_failure(self.host)
    }

    /// Step 13 ([`PowerState::restore`]).
    pub(super) fn restore_power_state(&self) {
        self.power.borrow().restore(self.host)
    }

    /// `qga_fs_freeze`: true when a freeze was issued (even if it failed), so that
    /// [`thaw`](Self::thaw) must follow.
    pub(super) fn freeze(&self) -> bool {
        if self.task.agent != Some(true)
            || self.task.mode == Mode::Stop
            || !self.power.borrow().was_running()
            || self.power.borrow().was_paused()
        {
            return false;
        }
        if qga::ping(&self.agent, &self.agent_options).is_err() {
            self.log(
                Level::Info,
                "skipping guest-agent 'fs-freeze', agent configured but not running?",
            );
            return false;
        }
        if self.style == Style::Current && self.task.guest_fsfreeze == Some(false) {
            self.log(
                Level::Info,
                "skipping guest-agent 'fs-freeze', disabled in VM options",
            );
            return false;
        }
        self.log(Level::Info, "issuing guest-agent 'fs-freeze' command");
        let frozen = match self.style {
            Style::Seed => qga::command(
                &self.agent,
                "guest-fsfreeze-freeze",
                None,
                None,
                &self.agent_options,
            )
            .map(drop),
            Style::Current => {
                qga::guest_fsfreeze(&self.agent, &self.agent_options, &mut self.sink())
            }
        };
        if let Err(e) = frozen {
            self.log_error(&e);
        }
        true
    }

    /// `qga_fs_thaw`, after a [`freeze`](Self::freeze) that returned true.
    pub(super) fn thaw(&self) {
        self.log(Level::Info, "issuing guest-agent 'fs-thaw' command");
        let thawed = qga::command(
            &self.agent,
            "guest-fsfreeze-thaw",
            None,
            None,
            &self.agent_options,
        );
        if let Err(e) = thawed {
            self.log_error(&e);
        }
    }

    /// `mon_backup_cancel`.
    pub(super) fn cancel_job(&self) {
        backup::abort_job(self.peer, &self.options, &mut self.sink());
    }

    /// `query-proxmox-support`.
    pub(super) fn proxmox_support(&self) -> Result<Value> {
        backup::proxmox_support(self.peer, &self.options)
    }

    /// The status-poll loop of job `uuid`; today's PBS loop gets QEMU's support reply.
    pub(super) fn status_loop(&self, uuid: &str, support: Option<&Value>) -> Result<Completed> {
        let mut poller = Poller::new(self.peer, &self.options, uuid, self.style, None);
        if let Some(support) = support {
            poller.set_qemu_support(support, self.task.is_template == Some(true));
        }
        poller.run(&mut self.sink(), &mut || self.host.cancelled())
    }
}
