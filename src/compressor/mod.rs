//! compressor (under construction).
