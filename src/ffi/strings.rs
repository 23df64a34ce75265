//! Strings across the boundary: inputs checked, outputs owned by the library.

use std::ffi::{c_char, CStr, CString};

use super::result::*;

/// Frees a string the library returned (results and error messages). NULL is ignored.
///
/// # Safety
/// `s` is NULL or a pointer the library returned and that was not freed yet.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: the library made it with CString::into_raw.
        drop(unsafe { CString::from_raw(s) });
    }
}

/// Turns a Rust string into a library-owned C string; interior NULs become spaces, so
/// no message is ever lost or truncated.
pub(crate) fn to_c(s: &str) -> *mut c_char {
    let bytes: Vec<u8> = s.bytes().map(|b| if b == 0 { b' ' } else { b }).collect();
    CString::new(bytes).expect("NULs replaced").into_raw()
}

/// Reads a required UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string.
pub(crate) unsafe fn str_arg<'a>(
    p: *const c_char,
    name: &str,
) -> Result<&'a str, (vzdump_qemu_result, String)> {
    if p.is_null() {
        return Err((
            VZDUMP_QEMU_NULL_PARAMETER,
            format!("{name} must not be NULL"),
        ));
    }
    // SAFETY: caller guarantees NUL termination.
    unsafe { CStr::from_ptr(p) }.to_str().map_err(|_| {
        (
            VZDUMP_QEMU_INVALID_PARAMETER,
            format!("{name} is not valid UTF-8"),
        )
    })
}

/// Reads an optional UTF-8 string argument (NULL = absent).
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(
    p: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, (vzdump_qemu_result, String)> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: as above.
        unsafe { str_arg(p, name) }.map(Some)
    }
}
