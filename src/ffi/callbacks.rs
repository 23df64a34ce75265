//! The callbacks of the C API, in one place: the log sink and the cancel check, each called
//! with the caller's `userdata` first, on the calling thread.

use std::cell::Cell;
use std::ffi::{c_char, c_void, CString};

use crate::log::Level;

/// Log level of an informational line (`INFO:` in a vzdump task log).
pub const VZDUMP_QEMU_LOG_INFO: u32 = 0;
/// Log level of a warning (`WARN:`).
pub const VZDUMP_QEMU_LOG_WARN: u32 = 1;
/// Log level of an error (`ERROR:`).
pub const VZDUMP_QEMU_LOG_ERR: u32 = 2;

/// Receives one log line (no prefix, no newline; valid during the call). Return 0 to go
/// on; non-zero asks the call to stop (`VZDUMP_QEMU_CANCELLED`), e.g. when a Perl callback
/// died.
pub type vzdump_qemu_log_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, level: u32, line: *const c_char) -> u32>;

/// The cancel check: return true to stop the call (`VZDUMP_QEMU_CANCELLED`). Asked at least
/// every 100 ms while a call waits long, and at once when a signal interrupts a wait (the
/// call then goes on unless it returns true; a call given no cancel check returns
/// `VZDUMP_QEMU_INTERRUPTED` instead).
pub type vzdump_qemu_cancel_callback = Option<unsafe extern "C" fn(userdata: *mut c_void) -> bool>;

/// The caller's callbacks of one call, as the closures the library's Rust API takes. A log
/// callback asking to stop is remembered: the cancel check then says stop too.
pub(crate) struct Callbacks {
    log_cb: vzdump_qemu_log_callback,
    cancel_cb: vzdump_qemu_cancel_callback,
    userdata: *mut c_void,
    stopped: Cell<bool>,
}

impl Callbacks {
    /// The callbacks with their `userdata`.
    ///
    /// # Safety
    /// The callbacks are NULL or valid with `userdata` for the lifetime of the value.
    pub(crate) unsafe fn new(
        log_cb: vzdump_qemu_log_callback,
        cancel_cb: vzdump_qemu_cancel_callback,
        userdata: *mut c_void,
    ) -> Self {
        Callbacks {
            log_cb,
            cancel_cb,
            userdata,
            stopped: Cell::new(false),
        }
    }

    /// Hands one line to the log callback (if any), unless it asked to stop before.
    pub(crate) fn log(&self, level: Level, line: &str) {
        if !self.stopped.get() {
            self.log_always(level, line);
        }
    }

    /// Hands one line to the log callback (if any), also after it asked to stop: for steps
    /// that run to their end and offer every line.
    pub(crate) fn log_always(&self, level: Level, line: &str) {
        let Some(cb) = self.log_cb else { return };
        let level = match level {
            Level::Info => VZDUMP_QEMU_LOG_INFO,
            Level::Warn => VZDUMP_QEMU_LOG_WARN,
            Level::Err => VZDUMP_QEMU_LOG_ERR,
        };
        let text = CString::new(line.replace('\0', " ")).expect("NULs replaced");
        // SAFETY: `new`'s contract.
        if unsafe { cb(self.userdata, level, text.as_ptr()) } != 0 {
            self.stopped.set(true);
        }
    }

    /// Delivers lines again after a log callback asked to stop (for the cancel's own lines).
    pub(crate) fn resume_logging(&self) {
        self.stopped.set(false);
    }

    /// True if the log callback asked to stop.
    pub(crate) fn log_stopped(&self) -> bool {
        self.stopped.get()
    }

    /// The cancel check: the log callback's stop, else the cancel callback's answer.
    pub(crate) fn cancelled(&self) -> bool {
        // SAFETY: `new`'s contract.
        self.stopped.get()
            || self
                .cancel_cb
                .is_some_and(|cb| unsafe { cb(self.userdata) })
    }

    /// Whether a signal should ask the cancel check and go on (a cancel callback given).
    pub(crate) fn resume_on_signal(&self) -> bool {
        self.cancel_cb.is_some()
    }
}
