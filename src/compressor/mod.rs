//! The compressor behind a pipe.
//!
//! vzdump lets QEMU write the VMA stream into a pipe whose other end feeds a compressor
//! (`zstd`, `gzip`, `pigz`, `lzop`) writing the archive file. [`Compressor::spawn`] starts
//! that compressor with `posix_spawn(3)` instead of forking the caller: glibc starts the child
//! with `clone(CLONE_VM | CLONE_VFORK)`, so the cost does not grow with the memory of the
//! calling (Perl) process, and no Perl code runs in a half-copied child.
//!
//! The child gets exactly three descriptors: the pipe's read end as stdin, the output file
//! as stdout and the caller's stderr. Its signal mask is empty and every signal has its
//! default disposition, and it leads a process group of its own: a kill reaches what a
//! shell it runs started (a pipeline), and a terminal's Ctrl-C reaches the caller, which
//! then ends the backup and the compressor with it. The pipe's write end, returned to the
//! caller, is close-on-exec and so never leaks into this or any other child.
//!
//! Waits are bounded and give control back on a signal ([`CompressorError::Interrupted`]);
//! a [`Compressor`] that is dropped unreaped is killed and reaped, so no zombie is left.

mod command;
mod error;
mod process;
mod reap;
mod spawn;

pub use command::{plan_line, CommandSpec, Invocation};
pub use error::CompressorError;
pub use process::{Compressor, KILL_REAP_TIMEOUT};
#[cfg(fuzzing)]
#[doc(hidden)]
pub use spawn::{program_for, SpawnPlan};
pub use spawn::{SpawnOptions, DEFAULT_PIPE_SIZE};
