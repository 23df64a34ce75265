//! What a Proxmox status daemon does to a VM's monitor: one short `query-status`
//! connection every 100 ms. Reports the longest wait, which shows whether something else
//! held the monitor too long.

use std::time::{Duration, Instant};

use vzdump_qemu::qmp::{self, Options, Peer};

use crate::{signals, Failure};

pub fn run(peer: &Peer, interval_ms: u64) -> Result<(), Failure> {
    let interval = Duration::from_millis(interval_ms);
    signals::install();
    let options = Options::default();
    let (mut queries, mut failures) = (0u64, 0u64);
    let mut longest = Duration::ZERO;
    while signals::caught().is_none() {
        let started = Instant::now();
        match qmp::command(peer, "query-status", None, None, &options) {
            Ok(_) => queries += 1,
            Err(e) if e.is_interrupted() => break,
            Err(_) => failures += 1,
        }
        longest = longest.max(started.elapsed());
        let _ = vzdump_qemu::wait::sleep(interval);
    }
    println!(
        "monitor probe: {queries} queries, {failures} failed, longest wait {:.1} ms",
        longest.as_secs_f64() * 1000.0
    );
    Ok(())
}
