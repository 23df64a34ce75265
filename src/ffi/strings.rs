//! Strings the library hands out, and their free.

use std::ffi::{c_char, CString};

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
