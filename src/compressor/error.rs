//! Errors of the compressor module.
//!
//! Two texts are qemu-server's, because task logs and callers match on them:
//! `fork compressor '<comp>' failed: <reason>` and
//! `<comp> failed - wrong exit status <ec>[ (signal <n>)]`.

use std::io;
use std::time::Duration;

/// Why starting, waiting for or killing a compressor failed.
#[derive(Debug, thiserror::Error)]
pub enum CompressorError {
    /// The command cannot be run at all (empty, or a NUL byte inside).
    #[error("invalid compressor command '{command}' - {reason}")]
    InvalidCommand {
        /// The command as given.
        command: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Preparing the spawn failed (pipe, pipe size, descriptor duplication, spawn attributes).
    #[error("{context} - {source}")]
    Setup {
        /// What was being done, e.g. `unable to set compressor pipe size to 1048576 bytes`.
        context: String,
        /// The OS error.
        source: io::Error,
    },
    /// `posix_spawn` failed, e.g. because the program does not exist. Nothing was started.
    #[error("fork compressor '{command}' failed: {}", os_text(.source))]
    Spawn {
        /// The command as given.
        command: String,
        /// The error `posix_spawn` reported (exec errors included).
        source: io::Error,
    },
    /// The compressor did not exit in time. It keeps running; wait again or kill it.
    #[error("compressor '{command}' (pid {pid}) did not exit within {timeout:?}")]
    Timeout {
        /// The command as given.
        command: String,
        /// Its process id.
        pid: libc::pid_t,
        /// The time waited.
        timeout: Duration,
    },
    /// A signal arrived while waiting. The compressor keeps running; wait again or kill it.
    #[error("waiting for compressor '{command}' (pid {pid}) interrupted by signal")]
    Interrupted {
        /// The command as given.
        command: String,
        /// Its process id.
        pid: libc::pid_t,
    },
    /// The compressor exited with a non-zero code or was killed by a signal.
    #[error("{command} failed - wrong exit status {code}{}", signal_suffix(*.signal))]
    ExitStatus {
        /// The command as given.
        command: String,
        /// The exit code (raw wait status shifted right by 8; 0 if a signal ended it).
        code: i32,
        /// The signal that ended it (raw wait status & 127), 0 if none.
        signal: i32,
    },
    /// Waiting for or signalling the compressor failed at the OS level, e.g. because
    /// something else reaped it. The handle no longer touches that process id.
    #[error("waiting for compressor '{command}' (pid {pid}) failed - {source}")]
    Wait {
        /// The command as given.
        command: String,
        /// Its process id.
        pid: libc::pid_t,
        /// The OS error.
        source: io::Error,
    },
    /// The handle was used in a process forked from the one that spawned the compressor;
    /// only the spawning process can wait for or kill its child.
    #[error(
        "compressor '{command}' (pid {pid}) belongs to process {owner}, not to process {current}"
    )]
    ForeignProcess {
        /// The command as given.
        command: String,
        /// The compressor's process id.
        pid: libc::pid_t,
        /// The process that spawned it.
        owner: libc::pid_t,
        /// The process that tried to use the handle.
        current: libc::pid_t,
    },
}

impl CompressorError {
    /// True if a signal interrupted a wait (the compressor is still there).
    pub fn is_interrupted(&self) -> bool {
        matches!(self, CompressorError::Interrupted { .. })
    }

    /// True if the handle was used in a process that did not spawn the compressor (which
    /// was left alone).
    pub fn is_foreign(&self) -> bool {
        matches!(self, CompressorError::ForeignProcess { .. })
    }

    /// True if a wait timed out (the compressor is still there).
    pub fn is_timeout(&self) -> bool {
        matches!(self, CompressorError::Timeout { .. })
    }
}

/// ` (signal <n>)` when a signal ended the process, as qemu-server appends it.
fn signal_suffix(signal: i32) -> String {
    if signal != 0 {
        format!(" (signal {signal})")
    } else {
        String::new()
    }
}

/// The bare `strerror` text of an OS error, as Perl's `$!` shows it (no `(os error N)`).
fn os_text(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => crate::error::strerror(code),
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_error_has_bare_strerror() {
        let err = CompressorError::Spawn {
            command: "nonexistent".into(),
            source: io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert_eq!(
            err.to_string(),
            "fork compressor 'nonexistent' failed: No such file or directory"
        );
    }

    #[test]
    fn exit_status_texts() {
        let err = |code, signal| CompressorError::ExitStatus {
            command: "zstd --threads=2".into(),
            code,
            signal,
        };
        assert_eq!(
            err(1, 0).to_string(),
            "zstd --threads=2 failed - wrong exit status 1"
        );
        assert_eq!(
            err(0, 9).to_string(),
            "zstd --threads=2 failed - wrong exit status 0 (signal 9)"
        );
    }
}
