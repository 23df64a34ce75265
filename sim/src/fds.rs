//! File descriptors passed with SCM_RIGHTS (QEMU's `monitor/fds.c` and socket chardev).
//!
//! Observed on QEMU 10.0.2: a received fd waits in the connection until `getfd` claims it
//! and is closed if the client disconnects first; named fds belong to the monitor and
//! survive the connection (a later client can `closefd` them, and an fd never consumed
//! stays open in QEMU).

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use nix::fcntl::{fcntl, FcntlArg, OFlag};

use crate::qapi::QmpError;

/// The fd of the most recent read that carried any, until `getfd` claims it.
#[derive(Default)]
pub struct PendingFd(Option<OwnedFd>);

impl PendingFd {
    /// Fds that came with one `recvmsg`: the first replaces (and closes) an unclaimed
    /// earlier one, extra ones are closed. Like QEMU, `O_NONBLOCK` is cleared, since it
    /// travels with the open file description.
    pub fn received(&mut self, fds: Vec<OwnedFd>) {
        if let Some(fd) = fds.into_iter().next() {
            if let Ok(bits) = fcntl(&fd, FcntlArg::F_GETFL) {
                let flags = OFlag::from_bits_retain(bits) & !OFlag::O_NONBLOCK;
                let _ = fcntl(&fd, FcntlArg::F_SETFL(flags));
            }
            self.0 = Some(fd);
        }
    }

    /// Claims the fd for `getfd`.
    pub fn take(&mut self) -> Result<OwnedFd, QmpError> {
        self.0
            .take()
            .ok_or_else(|| QmpError::generic("No file descriptor supplied via SCM_RIGHTS"))
    }
}

/// The monitor's named fds.
#[derive(Default)]
pub struct NamedFds(HashMap<String, OwnedFd>);

impl NamedFds {
    /// `getfd` with a claimed fd: an existing name is replaced and its fd closed. A name
    /// starting with a digit is refused and the fd closed, as in QEMU.
    pub fn add(&mut self, name: &str, fd: OwnedFd) -> Result<(), QmpError> {
        if name.starts_with(|c: char| c.is_ascii_digit()) {
            drop(fd);
            return Err(QmpError::generic(
                "Parameter 'fdname' expects a name not starting with a digit",
            ));
        }
        self.0.insert(name.to_string(), fd);
        Ok(())
    }

    /// `closefd`.
    pub fn close(&mut self, name: &str) -> Result<(), QmpError> {
        self.0
            .remove(name)
            .map(drop)
            .ok_or_else(|| QmpError::generic(format!("File descriptor named '{name}' not found")))
    }

    /// A consumer (`/dev/fdname/NAME`) takes the fd out of the table.
    pub fn take(&mut self, name: &str) -> Result<OwnedFd, QmpError> {
        self.0.remove(name).ok_or_else(|| {
            QmpError::generic(format!("File descriptor named '{name}' has not been found"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getfd_rules() {
        let mut pending = PendingFd::default();
        let mut named = NamedFds::default();
        assert_eq!(
            pending.take().unwrap_err().desc,
            "No file descriptor supplied via SCM_RIGHTS"
        );
        let (r, _w) = nix::unistd::pipe().unwrap();
        pending.received(vec![r]);
        assert_eq!(
            named.add("1x", pending.take().unwrap()).unwrap_err().desc,
            "Parameter 'fdname' expects a name not starting with a digit"
        );
        assert!(pending.take().is_err(), "the fd was consumed");
        let (r, _w) = nix::unistd::pipe().unwrap();
        pending.received(vec![r]);
        named.add("backup", pending.take().unwrap()).unwrap();
        assert!(named.take("backup").is_ok());
        assert_eq!(
            named.take("backup").unwrap_err().desc,
            "File descriptor named 'backup' has not been found"
        );
        assert_eq!(
            named.close("backup").unwrap_err().desc,
            "File descriptor named 'backup' not found"
        );
    }
}
