//! The callbacks of the C API, in one place: the log sink, the cancel check and the VM's
//! start and stop, each called with the caller's `userdata` first, on the calling thread.

use std::cell::Cell;
use std::ffi::{c_char, c_void, CString};

use crate::job::Host;
use crate::log::Level;
use crate::wait::SignalCheck;

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
/// `VZDUMP_QEMU_INTERRUPTED` instead). Also the type of a peer's signal check
/// (`vzdump_qemu_peer_set_signal_check`), which one-shot calls ask.
pub type vzdump_qemu_cancel_callback = Option<unsafe extern "C" fn(userdata: *mut c_void) -> bool>;

/// Starts or stops the backup's VM (`start_cb`: paused, as qemu-server's `vm_start` with
/// `paused`; `stop_cb`: after a backup the VM was started for). Return 0 on success; on
/// failure write a NUL-terminated message of at most `error_len` bytes into `error_buf`
/// (it is the job's failure for a start, a warning for a stop) and return non-zero.
pub type vzdump_qemu_vm_callback = Option<
    unsafe extern "C" fn(userdata: *mut c_void, error_buf: *mut c_char, error_len: usize) -> u32,
>;

/// A caller's signal check (`vzdump_qemu_peer_set_signal_check`) as the library's.
///
/// # Safety
/// `check` is valid with `userdata`, from any thread that runs a call of the peer it is
/// set on, for as long as that peer and the connections opened from it live.
pub(crate) unsafe fn signal_check(
    check: unsafe extern "C" fn(userdata: *mut c_void) -> bool,
    userdata: *mut c_void,
) -> SignalCheck {
    struct Caller {
        check: unsafe extern "C" fn(userdata: *mut c_void) -> bool,
        userdata: *mut c_void,
    }
    impl Caller {
        fn stops(&self) -> bool {
            // SAFETY: the contract of `signal_check`.
            unsafe { (self.check)(self.userdata) }
        }
    }
    // SAFETY: the contract of `signal_check` makes the pair usable from the calling threads.
    unsafe impl Send for Caller {}
    // SAFETY: as for Send; the library calls it from one thread at a time per call.
    unsafe impl Sync for Caller {}
    let caller = Caller { check, userdata };
    SignalCheck::new(move || caller.stops())
}

/// Room for a VM callback's message.
const VM_ERROR_LEN: usize = 1024;

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
        // One line whatever the text holds (NUL included, as `\x00`).
        let text = CString::new(crate::log::one_line(line).as_ref()).expect("NULs escaped");
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

/// The caller's callbacks as a job's or a power-state step's [`Host`]. A step whose VM
/// callback is NULL never calls it (the exports check what their steps need).
pub(crate) struct VmHost {
    cbs: Callbacks,
    start: vzdump_qemu_vm_callback,
    stop: vzdump_qemu_vm_callback,
    userdata: *mut c_void,
}

impl VmHost {
    /// The callbacks with their `userdata`.
    ///
    /// # Safety
    /// As [`Callbacks::new`], for all four callbacks.
    pub(crate) unsafe fn new(
        log_cb: vzdump_qemu_log_callback,
        start: vzdump_qemu_vm_callback,
        stop: vzdump_qemu_vm_callback,
        cancel_cb: vzdump_qemu_cancel_callback,
        userdata: *mut c_void,
    ) -> Self {
        VmHost {
            // SAFETY: the caller's contract.
            cbs: unsafe { Callbacks::new(log_cb, cancel_cb, userdata) },
            start,
            stop,
            userdata,
        }
    }

    fn call(&self, cb: vzdump_qemu_vm_callback, what: &str) -> Result<(), String> {
        let Some(cb) = cb else {
            return Err(format!("{what} is NULL"));
        };
        let mut buf = [0 as c_char; VM_ERROR_LEN];
        // SAFETY: the caller's callback, valid with `userdata`; the buffer is writable for
        // its length, and its last byte stays NUL.
        let rc = unsafe { cb(self.userdata, buf.as_mut_ptr(), VM_ERROR_LEN - 1) };
        if rc == 0 {
            return Ok(());
        }
        buf[VM_ERROR_LEN - 1] = 0;
        // SAFETY: NUL-terminated within the buffer (its last byte is 0).
        let text = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
        Err(match text.trim_end() {
            "" => format!("{what} callback failed ({rc})"),
            message => message.to_string(),
        })
    }
}

impl Host for VmHost {
    fn log(&self, level: Level, text: &str) {
        // Every line, also after a log callback asked to stop: the job still logs its
        // error and the cancel, as the seed's logerr after a die in loginfo.
        self.cbs.log_always(level, text);
    }

    fn start_vm_paused(&self) -> Result<(), String> {
        self.call(self.start, "start_cb")
    }

    fn stop_vm(&self) -> Result<(), String> {
        self.call(self.stop, "stop_cb")
    }

    fn cancelled(&self) -> bool {
        self.cbs.cancelled()
    }
}
