//! The VMA output: an fd in non-blocking mode, as QEMU's VMA writer leaves it.
//!
//! QEMU sets `O_NONBLOCK` on the target and waits for writability in its event loop; we do
//! the same with `poll`, waking up regularly to notice `backup-cancel`.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// Text of an errno as glibc's `strerror` gives it (std uses `strerror_r`).
pub fn strerror(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Where the stream goes.
pub struct Target {
    fd: OwnedFd,
    cancel: Arc<AtomicBool>,
    /// A file this backup created; removed if the backup fails to start.
    created: Option<PathBuf>,
}

impl Target {
    /// Takes a received fd (`/dev/fdname/NAME`) and sets `O_NONBLOCK` on it.
    pub fn from_fd(fd: OwnedFd, cancel: Arc<AtomicBool>) -> io::Result<Target> {
        set_nonblocking(&fd)?;
        Ok(Target {
            fd,
            cancel,
            created: None,
        })
    }

    /// Opens a path like QEMU: an existing FIFO is opened for writing, anything else is
    /// created exclusively (mode 0644). The error text is QEMU's, trailing newline included.
    pub fn open(path: &Path, cancel: Arc<AtomicBool>) -> Result<Target, String> {
        let fifo = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo());
        let mut opts = OpenOptions::new();
        opts.write(true).custom_flags(libc::O_NONBLOCK);
        if !fifo {
            opts.create_new(true).mode(0o644);
        }
        match opts.open(path) {
            Ok(f) => Ok(Target {
                fd: f.into(),
                cancel,
                created: (!fifo).then(|| path.to_path_buf()),
            }),
            Err(e) => Err(format!(
                "can't open file {} - {}\n",
                path.display(),
                strerror(e.raw_os_error().unwrap_or(libc::EIO))
            )),
        }
    }

    /// Closes the target after a failed start; a file created for it is removed.
    pub fn abandon(self) {
        if let Some(p) = &self.created {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

impl Write for Target {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            if self.cancel.load(Ordering::SeqCst) {
                // Not `Interrupted`: `write_all` would retry that forever.
                return Err(io::Error::other("backup canceled"));
            }
            match nix::unistd::write(&self.fd, buf) {
                Ok(n) => return Ok(n),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLOUT)];
                    match poll(&mut fds, PollTimeout::from(50u8)) {
                        Ok(_) | Err(Errno::EINTR) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strerror_is_glibc_text() {
        assert_eq!(strerror(libc::EPIPE), "Broken pipe");
        assert_eq!(strerror(libc::EIO), "Input/output error");
    }

    #[test]
    fn existing_path_is_refused_with_qemu_text() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("pve-qmp-sim-target-{}", std::process::id()));
        std::fs::write(&path, b"x").unwrap();
        let err = Target::open(&path, Arc::default()).err().unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            err,
            format!("can't open file {} - File exists\n", path.display())
        );
    }

    #[test]
    fn writes_through_a_full_pipe_and_stops_on_cancel() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let cancel = Arc::new(AtomicBool::new(false));
        let mut t = Target::from_fd(w, cancel.clone()).unwrap();
        let reader = std::thread::spawn(move || {
            let mut f = std::fs::File::from(r);
            let mut v = Vec::new();
            io::Read::read_to_end(&mut f, &mut v).unwrap();
            v.len()
        });
        t.write_all(&vec![7u8; 1 << 20]).unwrap();
        drop(t);
        assert_eq!(reader.join().unwrap(), 1 << 20);

        let (_r, w) = nix::unistd::pipe().unwrap();
        let mut t = Target::from_fd(w, cancel.clone()).unwrap();
        cancel.store(true, Ordering::SeqCst);
        let err = t.write_all(&vec![7u8; 1 << 20]).unwrap_err();
        assert_eq!(err.to_string(), "backup canceled");
    }
}
