//! Helpers shared by the root crate's integration tests (each test file that needs them
//! says `mod common;`); the peers themselves come from `testkit`.

// Each test file compiles this module anew and uses only some of it.
#![allow(dead_code)]

use std::path::Path;

use vzdump_qemu::backup::{PbsParams, Secret};
use vzdump_qemu::error::{Cause, Stage};
use vzdump_qemu::qmp::ErrorClass;
use vzdump_qemu::Error;

/// The cause and stage of a command failure.
pub fn cause_of(err: &Error) -> (Cause, Stage) {
    let c = err
        .command_error()
        .unwrap_or_else(|| panic!("not a command failure: {err}"));
    (c.cause.clone(), c.stage)
}

/// Asserts that `err` is the peer's error reply (`class`, `desc`) to `command`, sent to a
/// peer of `kind` (`qmp`, `qga`) given by its socket path: qemu-server's shape with the
/// peer's own name (src/error.rs), `<kind> socket '<path>' command '<command>' failed - <desc>`.
pub fn assert_error_reply(
    err: &Error,
    (kind, socket): (&str, &Path),
    command: &str,
    class: ErrorClass,
    desc: &str,
) {
    assert_eq!(err.class(), Some(&class), "{err}");
    assert_eq!(err.desc(), desc);
    assert_eq!(
        err.to_string(),
        format!(
            "{kind} socket '{}' command '{command}' failed - {desc}",
            socket.display()
        )
    );
}

/// A PBS job with only the mandatory parameters, and `password` if given.
pub fn pbs_job(
    repository: &str,
    backup_id: &str,
    backup_time: i64,
    password: Option<&str>,
) -> PbsParams {
    PbsParams {
        repository: repository.into(),
        backup_id: backup_id.into(),
        backup_time,
        password: password.map(Secret::new),
        ..PbsParams::default()
    }
}

/// The seconds of a `resuming VM again after <n> seconds` line (qemu-server's
/// `resume_vm_after_job_start`), with or without a level prefix; panics on other lines.
pub fn downtime_of(line: &str) -> i64 {
    line.split_once("resuming VM again after ")
        .and_then(|(_, rest)| rest.strip_suffix(" seconds"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a downtime line: '{line}'"))
}
