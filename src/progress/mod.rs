//! progress (under construction).
