//! vzdump-qemu: the QEMU backup plumbing of Proxmox VE's `vzdump`, in Rust.
//!
//! The modules follow the steps of a backup as `PVE::VZDump::QemuServer` performs them:
//! - [`qmp`]: a blocking QMP client over a unix socket (ids, events, fd passing, timeouts);
//! - [`qga`]: a blocking guest-agent client (sync per operation) and the fs-freeze/thaw steps;
//! - [`backup`]: Proxmox's `backup`, `query-backup` and `backup-cancel` commands, typed;
//! - [`progress`]: the status-poll loop with the seed's log lines and errors, and its poller;
//! - [`log`]: the lines handed to the caller's log sink;
//! - [`compressor`]: the compressor behind a pipe, spawned without forking the caller;
//! - [`ffi`]: the C API (header `include/vzdump_qemu.h`), on which the Perl shim builds;
//! - [`monitor`]: qemu-server's `mon_cmd`, to the monitor or the guest agent;
//! - [`running`]: qemu-server's check whether a VM's QEMU runs (its pid file);
//! - [`style`]: whose texts to reproduce, the 2020 seed's or today's qemu-server's.
//!
//! The library starts no threads, writes nothing to stdout or stderr, and keeps no global
//! state besides a command id counter, so it is safe in processes that fork.

pub mod backup;
pub mod compressor;
pub mod error;
pub mod ffi;
mod forksafe;
pub mod job;
pub mod log;
pub mod loose;
pub mod monitor;
pub mod progress;
pub mod qga;
pub mod qmp;
pub mod running;
pub mod style;
mod transport;
pub mod wait;

/// Crate internals the fuzz targets (`fuzz/`) drive; only in builds with `--cfg fuzzing`
/// (what `cargo fuzz` passes), never in the library as shipped.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::compressor::{program_for, SpawnPlan};
    pub use crate::qmp::Decoder;
}

pub use error::{Error, Result};
pub use style::Style;
