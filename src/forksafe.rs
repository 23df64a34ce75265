//! Open monitor and agent connections are not inherited by forked children.
//!
//! QEMU's monitor serves one client at a time. A process that forks while another of its
//! threads holds a connection gives the child a copy of that socket; the parent's thread
//! closes its copy when its operation ends, but QEMU keeps serving the connection as long
//! as the child's copy is open, and every other client waits. So every connection's
//! descriptor is kept in a fixed registry of atomics, and a `pthread_atfork` child handler
//! (async-signal-safe: atomic loads and stores and `close` only) closes them all in the
//! child. A connection object the child inherited then refuses to be used (its owner pid
//! is the parent's) and does not close the descriptor number again when dropped.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Once;

/// Open connections tracked at a time; a connection beyond them is not closed in children.
const SLOTS: usize = 64;

static OPEN: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];
static HANDLER: Once = Once::new();

/// Tracks `fd` as an open connection; installs the fork handler on first use (not at load
/// time: the library starts nothing on its own).
pub(crate) fn register(fd: i32) {
    HANDLER.call_once(|| {
        // SAFETY: a handler that only touches atomics and calls close(2), both
        // async-signal-safe, as the child of a multi-threaded fork requires.
        unsafe { libc::pthread_atfork(None, None, Some(close_in_child)) };
    });
    for slot in &OPEN {
        if slot
            .compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return;
        }
    }
}

/// Stops tracking `fd` (before it is closed).
pub(crate) fn unregister(fd: i32) {
    for slot in &OPEN {
        if slot
            .compare_exchange(fd, -1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return;
        }
    }
}

extern "C" fn close_in_child() {
    for slot in &OPEN {
        let fd = slot.swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            // SAFETY: the descriptor was a connection of the parent; in the child nothing
            // may use it (the objects holding it refuse to in another process).
            unsafe { libc::close(fd) };
        }
    }
}
