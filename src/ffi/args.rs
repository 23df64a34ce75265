//! Arguments and outputs of the exports, each checked once and named after its parameter
//! (the macros take the name from the identifier, as rustls-ffi's `try_ref_from_ptr!`), so
//! a message can never name another parameter than the one that was wrong.
//!
//! Every macro expands to an expression that returns early from the export's body with a
//! [`Failure`] (`VZDUMP_QEMU_NULL_PARAMETER` or `VZDUMP_QEMU_INVALID_PARAMETER`).
//! Outputs are checked before any work ([`Out::new`]) and written only on success.

use std::ffi::{c_char, CStr};
use std::os::fd::BorrowedFd;
use std::time::Duration;

use serde_json::Value;

use super::result::*;
use super::strings::to_c;
use super::Failure;

/// Calls the checker `$f` of this module on parameter `$p`, named after it, and returns
/// early with its [`Failure`]. Every export's `# Safety` section makes the caller pass
/// what the checker requires (NULL or a live handle of the type, NULL or a NUL-terminated
/// string, NULL or a pointer writable for one value); `handle_mut` also needs that no other
/// reference to the handle is alive, which holds as each export takes it once.
macro_rules! checked {
    ($($f:ident)::+, $p:ident) => {
        // SAFETY: see above.
        unsafe { $crate::ffi::args::$($f)::+($p, stringify!($p)) }?
    };
}

/// `&T` from a handle argument: `arg_ref!(peer)`.
macro_rules! arg_ref {
    ($p:ident) => {
        checked!(handle, $p)
    };
}

/// `&mut T` from a handle argument: `arg_mut!(conn)`.
macro_rules! arg_mut {
    ($p:ident) => {
        checked!(handle_mut, $p)
    };
}

/// `&str` from a required UTF-8 string argument: `arg_str!(command)`.
macro_rules! arg_str {
    ($p:ident) => {
        checked!(str_arg, $p)
    };
}

/// `Option<&str>` from an optional string argument (NULL = absent): `arg_opt_str!(run_dir)`.
macro_rules! arg_opt_str {
    ($p:ident) => {
        checked!(opt_str_arg, $p)
    };
}

/// `Option<Value>` from an optional JSON object argument: `arg_json!(arguments_json)`.
macro_rules! arg_json {
    ($p:ident) => {
        checked!(json_arg, $p)
    };
}

/// `BorrowedFd` from an open file descriptor argument: `arg_fd!(target_fd)`.
macro_rules! arg_fd {
    ($p:ident) => {
        $crate::ffi::args::fd_arg($p, stringify!($p))?
    };
}

/// `Option<BorrowedFd>` from a descriptor argument where -1 means none: `arg_opt_fd!(fd)`.
macro_rules! arg_opt_fd {
    ($p:ident) => {
        match $p {
            -1 => None,
            _ => Some(arg_fd!($p)),
        }
    };
}

/// An [`Out`] for a required output pointer, checked before any work: `out!(out_json)`.
macro_rules! out {
    ($p:ident) => {
        checked!(Out::new, $p)
    };
}

/// An [`Out`] for an optional output pointer (NULL: not wanted): `opt_out!(out_progress_json)`.
macro_rules! opt_out {
    ($p:ident) => {
        // SAFETY: as `out!`.
        unsafe { $crate::ffi::args::Out::optional($p) }
    };
}

/// `<name> must not be NULL`.
pub(crate) fn null(name: &str) -> Failure {
    Failure::new(
        VZDUMP_QEMU_NULL_PARAMETER,
        format!("{name} must not be NULL"),
    )
}

/// An argument the library cannot use.
pub(crate) fn invalid(message: impl Into<String>) -> Failure {
    Failure::new(VZDUMP_QEMU_INVALID_PARAMETER, message)
}

/// Checks and borrows a handle.
///
/// # Safety
/// `p` is NULL or a live handle of type `T` made by this library.
pub(crate) unsafe fn handle<'a, T>(p: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: caller contract.
    unsafe { p.as_ref() }.ok_or_else(|| null(name))
}

/// Checks and mutably borrows a handle.
///
/// # Safety
/// As [`handle`], and no other reference to it is alive.
pub(crate) unsafe fn handle_mut<'a, T>(p: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: caller contract.
    unsafe { p.as_mut() }.ok_or_else(|| null(name))
}

/// Reads a required UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(null(name));
    }
    // SAFETY: caller guarantees NUL termination.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| invalid(format!("{name} is not valid UTF-8")))
}

/// Reads an optional UTF-8 string argument (NULL = absent).
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(
    p: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, Failure> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: as above.
        unsafe { str_arg(p, name) }.map(Some)
    }
}

/// Parses an optional JSON argument (NULL = none); it must be an object. Messages never
/// quote the input (it may hold a password).
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn json_arg(json: *const c_char, name: &str) -> Result<Option<Value>, Failure> {
    // SAFETY: caller contract.
    let Some(text) = (unsafe { opt_str_arg(json, name) })? else {
        return Ok(None);
    };
    // A syntax error names the position and what was expected, never the input.
    let value: Value = serde_json::from_str(text)
        .map_err(|e| invalid(format!("{name} is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(invalid(format!(
            "{name} must be a JSON object, got {}",
            crate::loose::kind_of(&value)
        )));
    }
    Ok(Some(value))
}

/// Checks a file descriptor argument: open in this process.
pub(crate) fn fd_arg<'a>(fd: i32, name: &str) -> Result<BorrowedFd<'a>, Failure> {
    // SAFETY: F_GETFD only queries the descriptor table.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(invalid(format!(
            "{name} {fd} is not an open file descriptor"
        )));
    }
    // SAFETY: checked open; the caller keeps it open for the duration of the call.
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// Milliseconds from C, 0 meaning "the default".
pub(crate) fn millis(ms: u64) -> Option<Duration> {
    (ms != 0).then(|| Duration::from_millis(ms))
}

/// An output pointer, checked non-NULL when made; [`put`](Self::put) writes it. Made
/// before any work, so nothing is done that could not be reported.
pub(crate) struct Out<T> {
    ptr: *mut T,
}

impl<T> Out<T> {
    /// A required output.
    ///
    /// # Safety
    /// `ptr` is NULL or writable for one `T`.
    pub(crate) unsafe fn new(ptr: *mut T, name: &str) -> Result<Self, Failure> {
        if ptr.is_null() {
            return Err(null(name));
        }
        Ok(Out { ptr })
    }

    /// An optional output: `None` for NULL.
    ///
    /// # Safety
    /// As [`new`](Self::new).
    pub(crate) unsafe fn optional(ptr: *mut T) -> Option<Self> {
        (!ptr.is_null()).then_some(Out { ptr })
    }

    /// Writes the value (on success only).
    pub(crate) fn put(self, value: T) {
        // SAFETY: checked non-NULL in `new`; the caller made it writable.
        unsafe { self.ptr.write(value) }
    }
}

impl Out<*mut c_char> {
    /// Writes a library-owned copy of `text` (freed with `vzdump_qemu_string_free`).
    pub(crate) fn put_str(self, text: &str) {
        self.put(to_c(text))
    }
}
