//! State shared by the monitor thread and the backup worker.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::sync::{Mutex, MutexGuard};

use crate::args::{Config, RunState};
use crate::disk::Disk;
use crate::fds::NamedFds;
use crate::job::{BitmapInfo, BitmapState, Job};
use crate::output::Output;

/// The simulated QEMU process.
pub struct Sim {
    /// The command line.
    pub cfg: Config,
    /// Block devices, in command line order (QEMU's device order).
    pub disks: Vec<Disk>,
    /// Output to the connected client.
    pub out: Output,
    state: Mutex<State>,
    record: Option<Mutex<File>>,
}

/// Mutable state, behind [`Sim::lock`].
pub struct State {
    /// VM run state.
    pub run_state: RunState,
    /// The most recent backup job, if one was ever started.
    pub job: Option<Job>,
    /// PBS dirty bitmaps by drive name (they outlive jobs, as in QEMU).
    pub bitmaps: HashMap<String, BitmapState>,
    /// `query-pbs-bitmap-info` of the most recent backup.
    pub bitmap_info: Vec<BitmapInfo>,
    /// Fds named with `getfd` (they belong to the monitor, not to a connection).
    pub fds: NamedFds,
}

impl Sim {
    /// Sets up the process state; `record` is already opened for appending.
    pub fn new(cfg: Config, disks: Vec<Disk>, record: Option<File>) -> Sim {
        let run_state = cfg.state;
        Sim {
            cfg,
            disks,
            out: Output::default(),
            state: Mutex::new(State {
                run_state,
                job: None,
                bitmaps: HashMap::new(),
                bitmap_info: Vec::new(),
                fds: NamedFds::default(),
            }),
            record: record.map(Mutex::new),
        }
    }

    /// Locks the mutable state (a poisoned lock is taken over: the state stays consistent
    /// field by field).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one request line to the `--record` file, if any.
    pub fn record(&self, line: &[u8]) {
        if let Some(f) = &self.record {
            let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
            let mut buf = line.to_vec();
            buf.push(b'\n');
            if let Err(e) = f.write_all(&buf) {
                eprintln!("pve-qmp-sim: writing the record file failed: {e}");
            }
        }
    }
}
