//! The status-poll loop that runs while QEMU backs up: `query-backup` until the job ends,
//! with the log lines and errors of qemu-server, in the 2020 seed's format or today's
//! (proxmox/qemu-server `src/PVE/VZDump/QemuServer.pm`, `$query_backup_status_loop`;
//! proxmox/pve-common `src/PVE/Format.pm`).
//!
//! Layers, each usable alone:
//! - [`render_bytes`], [`render_duration`]: pve-common's size and duration formats;
//! - [`StatusLoop`]: the pure state machine, one reply and one wall-clock second in, lines
//!   and a [`Step`] out ([`Style::Seed`] or [`Style::Current`]);
//! - [`BitmapSetup`]: the current style's dirty-bitmap lines from `query-pbs-bitmap-info`;
//! - [`Scheduler`]: when to query next, predicting the end so it is seen without delay;
//! - [`run`]: the loop over a [`StatusSource`], a [`Clock`] and a log sink.
//!
//! - [`Poller`]: the loop against a live QEMU, one `query-backup` connection per query.
//!
//! All lines are logged at [`Level::Info`]; errors are returned as [`PollError`], whose text
//! is qemu-server's `die` message without its newline (callers log it as [`Level::Err`]).
//!
//! [`Level::Info`]: crate::log::Level::Info
//! [`Level::Err`]: crate::log::Level::Err
//!
//! # Where each line and error of the seed comes from
//!
//! Seed lines are the line numbers of the 2020 seed's `$query_backup_status_loop` (in its
//! `QemuServer.pm`).
//!
//! | seed (line) | text | code path |
//! | --- | --- | --- |
//! | 271–275 | `total`, `transferred`, `zero-bytes` default 0; percents via `int(x*100/total)` | `StatusLoop::measure` (called by [`StatusLoop::observe`]); `status_loop::percent_of` |
//! | 277 | `got unexpected uuid` (uuid missing, empty or different) | `observe`, uuid check before anything else → [`PollError::UnexpectedUuid`] |
//! | 279–287 | `duration`, `timediff = … \|\| 1`, read/write bytes, MB/s | `measure` (`Numbers`), `seed::mbps` |
//! | 289 | `status: <p>% (<t>/<total>), sparse <z>% (<zero>), duration <d>, read/write <r>/<w> MB/s` | `seed::status_line` |
//! | 291 | status defaults to `unknown` | `observe`, `truthy(status)` |
//! | 293 | line printed on every non-`active` reply | `StatusLoop::end`, `print` for [`Style::Seed`] |
//! | 295 | `<errmsg>` or `unknown error` | `end`, arm `"error"` → [`PollError::Backup`] |
//! | 296 | `got unexpected status '<s>'` | `end`, last arm → [`PollError::UnexpectedStatus`] |
//! | 297–298 | `got wrong number of transfered bytes (<total> != <transferred>)` | `end`, first `"done"` arm (seed only) → [`PollError::WrongTransferred`] |
//! | 300 | leave the loop | `end`, `"done"` arm → [`Step::Finished`] |
//! | 302–308 | print when percent changed and `timediff > 2`; keep non-zero `last_*` | `observe`, print branch; `StatusLoop::remember` |
//! | 310 | `sleep(1)` | [`Scheduler::next_delay`] and `driver::wait` (1 s steady state) |
//! | 313–318 | `transferred <n> MB in <s> seconds (<r> MB/s)` if transferred and duration | `seed::summary` via [`StatusLoop::summary`] |
//! | 269 | `mon_cmd($vmid, 'query-backup')` dies: the loop dies with its text | `backup::poll` `Query` → [`LoopError::Source`], the texts of [`crate::Error`] |
//! | 269 → `qmp_cmd` | `VM 100 not running` (pid file missing, stale, not a QEMU's) | [`crate::qmp::Peer::check_reachable`] → `Error::NotRunning`; proxmox/qemu-server `src/PVE/QemuServer/Monitor.pm` `qmp_cmd`, `src/PVE/QemuServer/Helpers.pm` `vm_running_locally` |
//! | 269 → `qmp_cmd` | `unable to open monitor socket` | `check_reachable` → `Error::NoSocket`; `Monitor.pm` `qmp_cmd` |
//! | 269 → `cmd` | `VM 100 qmp command 'query-backup' failed - <reason>` | `Error::Command` ([`crate::error::CommandError`]); proxmox/qemu-server `src/PVE/QMPClient.pm` `cmd` |
//! | … reason | `unable to connect to VM 100 qmp socket - <strerror>` / `- timeout after <n> retries` | `qmp::connect` → `Cause::Connect` / `Cause::ConnectTimeout`; `QMPClient.pm` `$open_connection` |
//! | … reason | `client closed connection` | `Cause::Closed`; `QMPClient.pm` `mux_close` |
//! | … reason | `got timeout` (10 min for `query-backup`) | `Cause::Timeout`; `QMPClient.pm` `mux_timeout`, timeout table in `cmd` |
//! | … reason | `received responsed without command id` (seed) / `received response without command id` (current) | `Cause::MissingId`; `QMPClient.pm` `mux_input` |
//! | … reason | `got wrong command id '<got>' (expected <id>)` | `Cause::WrongId`; `QMPClient.pm` `mux_input` |
//! | … reason | QEMU's `desc`, e.g. `The command query-backup has not been found` | `Cause::Qemu`; `QMPClient.pm` `mux_input` (`die "$desc\n"`) |
//! | current only | `query-pbs-bitmap-info` fails before the first query: the same shapes for that command | `backup::Poller::set_qemu_support` |
//!
//! The current style ([`Style::Current`], qemu-server 6.2-12+) shares the skeleton and
//! differs in: `current::status_line` (`%3d%% (<t> of <target>) in <d>, read: …, write: …`),
//! target and 100 % base in `measure`, the final line only below 100 % and no byte-count
//! check in `StatusLoop::end`, `Waiting for server to finish backup validation...` in
//! `observe`'s print branch, the sparse / incremental / transferred (`<1 seconds`) lines in
//! `current::summary`, and the bitmap lines in [`BitmapSetup::new`].
//!
//! # Numbers
//!
//! Every figure of both styles (percents, byte and time differences, rates, the bitmap
//! sums, [`render_bytes`] and [`render_duration`]) is computed with Perl's own number
//! semantics by the private `perl_num` module: integers stay exact while they fit an IV or
//! UV, and become doubles exactly where perl 5.36 switches (products beyond 64 bits,
//! divisions that are not exact integer quotients above 2^53, `undef` operands, ...).
//! Above 2^53 this gives qemu-server's digits, not the exact ones: e.g. the percent of a
//! backup past about 90 TB (`transferred * 100` beyond 2^53), a rate above 2^53 bytes/s,
//! or `1.0 ` for 2^60 bytes (no unit: Perl's unit list ends at PiB).
//! `tests/progress_perl.rs` compares each formula with the upstream expression run by
//! `/usr/bin/perl` over thousands of cases.
//!
//! Deviations, all on input qemu-server never sees: the [`Progress`] fields are integers
//! and saturate where Perl's value does not fit (a percent only where `transferred` exceeds
//! its base about 1.8e17-fold, a target only for bitmap sizes adding up beyond `u64::MAX`;
//! a rate is 0 where Perl's is negative, from a clock that went backwards); the lines print
//! Perl's values. An incremental line with a zero total prints 0 % where Perl dies
//! dividing by zero. [`render_bytes`] clamps more than 64 decimals to 64.

mod bitmap;
mod current;
mod driver;
mod format;
mod perl_num;
mod poller;
mod schedule;
mod seed;
mod status;
mod status_loop;

pub use bitmap::{BitmapInfo, BitmapSetup};
pub use driver::{
    run, run_paced, Clock, Completed, LoopError, Options, Pacing, StatusSource, SystemClock,
    CANCEL_CHECK,
};
pub use format::{render_bytes, render_duration};
pub use poller::{poll_or_cancel, Poller};
pub use schedule::{Sample, Scheduler, BURST, DEFAULT_INTERVAL, MAX_INTERVAL, MIN_DELAY};
pub use status::{query, query_watched, BackupStatus};
pub use status_loop::{Observation, PollError, Progress, StatusLoop, Step, Style, Totals};
