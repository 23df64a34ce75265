//! ffi (under construction).
