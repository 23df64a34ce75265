//! One request: parsing, QMP envelope checks, negotiation, the command table, faults.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::args::RunState;
use crate::backup;
use crate::fds::PendingFd;
use crate::input::{self, NOT_AN_OBJECT};
use crate::job::no_job_json;
use crate::qapi::{check, req, str_arg, Param, QmpError, Ty};
use crate::qjson::{compact, obj, J};
use crate::state::Sim;

/// Per-connection state.
#[derive(Default)]
pub struct Session {
    /// `qmp_capabilities` succeeded.
    pub negotiated: bool,
    /// A received fd not claimed yet.
    pub pending_fd: PendingFd,
    /// `query-backup` calls so far (numbers the `SIM_TICK` events of `--sim-tick`).
    ticks: u64,
}

/// What the monitor does after a request.
pub enum Outcome {
    /// Send this reply.
    Reply(J),
    /// The command ran; send bytes that are not JSON instead of its reply.
    Garbage,
    /// Never reply and stop reading (`--fault-hang`).
    Hang,
    /// Send this reply, then end the process (`quit`).
    Quit(J),
}

/// Handles one complete JSON object received from the client.
pub fn handle(sim: &Arc<Sim>, session: &mut Session, raw: &[u8]) -> Outcome {
    let request = match input::parse(raw) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Outcome::Reply(error_reply(None, &QmpError::generic(NOT_AN_OBJECT))),
        Err(desc) => return Outcome::Reply(error_reply(None, &QmpError::generic(desc))),
    };
    sim.record(&compact(raw));
    let id = request.get("id").map(J::from);
    let (name, args) = match envelope(&request) {
        Ok(x) => x,
        Err(e) => return Outcome::Reply(error_reply(id, &e)),
    };
    let faults = &sim.cfg.faults;
    if faults.hang.iter().any(|c| c == name) {
        return Outcome::Hang;
    }
    let result = run(sim, session, name, &args);
    if faults.garbage.iter().any(|c| c == name) {
        return Outcome::Garbage;
    }
    match result {
        Ok(Command::Reply(ret)) => Outcome::Reply(reply(id, ret)),
        Ok(Command::Quit) => Outcome::Quit(reply(id, obj([]))),
        Err(e) => Outcome::Reply(error_reply(id, &e)),
    }
}

/// `{"error": {...}, "id": ...}` (no `id` if the request had none).
pub fn error_reply(id: Option<J>, e: &QmpError) -> J {
    let mut r = obj([("error", e.to_json())]);
    if let Some(id) = id {
        r.push("id", id);
    }
    r
}

fn reply(id: Option<J>, ret: J) -> J {
    let mut r = obj([("return", ret)]);
    if let Some(id) = id {
        r.push("id", id);
    }
    r
}

/// Checks the top-level members (`qapi/qmp-dispatch.c`); returns the command name and
/// its arguments. `exec-oob` is refused: this QEMU offers no capabilities.
fn envelope(request: &Map<String, Value>) -> Result<(&str, Map<String, Value>), QmpError> {
    for (key, value) in request {
        match key.as_str() {
            "execute" if !value.is_string() => {
                return Err(QmpError::generic(
                    "QMP input member 'execute' must be a string",
                ))
            }
            "arguments" if !value.is_object() => {
                return Err(QmpError::generic(
                    "QMP input member 'arguments' must be an object",
                ))
            }
            "execute" | "arguments" | "id" => {}
            other => {
                return Err(QmpError::generic(format!(
                    "QMP input member '{other}' is unexpected"
                )))
            }
        }
    }
    let name = str_arg(request, "execute")
        .ok_or_else(|| QmpError::generic("QMP input lacks member 'execute'"))?;
    let args = match request.get("arguments") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    Ok((name, args))
}

/// Result of a command that ran.
enum Command {
    Reply(J),
    Quit,
}

const FDNAME: &[Param] = &[req("fdname", Ty::Str)];

fn run(
    sim: &Arc<Sim>,
    session: &mut Session,
    name: &str,
    args: &Map<String, Value>,
) -> Result<Command, QmpError> {
    if !session.negotiated {
        if name != "qmp_capabilities" {
            return Err(QmpError::command_not_found(
                "Expecting capabilities negotiation with 'qmp_capabilities'",
            ));
        }
        if let Some(cap) = check_capabilities(args)?.first() {
            // Proxmox's QEMU offers no capability at all.
            return Err(QmpError::generic(format!(
                "Capability '{cap}' not available"
            )));
        }
        session.negotiated = true;
        sim.out.set_negotiated();
        return Ok(Command::Reply(obj([])));
    }
    let proxmox = sim.cfg.proxmox_support;
    let ret = match name {
        "qmp_capabilities" => {
            check_capabilities(args)?;
            return Err(QmpError::command_not_found(
                "Capabilities negotiation is already complete, command ignored",
            ));
        }
        "getfd" => {
            check(args, FDNAME)?;
            let fd = session.pending_fd.take()?;
            let name = str_arg(args, "fdname").unwrap_or_default();
            sim.lock().fds.add(name, fd)?;
            obj([])
        }
        "closefd" => {
            check(args, FDNAME)?;
            let name = str_arg(args, "fdname").unwrap_or_default();
            sim.lock().fds.close(name)?;
            obj([])
        }
        "backup" => {
            check(args, backup::PARAMS)?;
            backup::backup(sim, args)?
        }
        "query-backup" => {
            check(args, &[])?;
            if sim.cfg.sim_tick {
                session.ticks += 1;
                sim.out
                    .event("SIM_TICK", Some(obj([("query", session.ticks.into())])));
            }
            let st = sim.lock();
            match &st.job {
                Some(job) => job.record.to_json(sim.cfg.seed_era),
                None => no_job_json(sim.cfg.seed_era),
            }
        }
        "backup-cancel" => {
            check(args, &[])?;
            backup_cancel(sim);
            obj([])
        }
        "query-proxmox-support" if proxmox => {
            check(args, &[])?;
            proxmox_support()
        }
        "query-pbs-bitmap-info" if proxmox => {
            check(args, &[])?;
            J::Arr(sim.lock().bitmap_info.iter().map(|b| b.to_json()).collect())
        }
        "query-status" => {
            check(args, &[])?;
            let state = sim.lock().run_state;
            obj([
                ("running", (state == RunState::Running).into()),
                ("status", state.as_str().into()),
            ])
        }
        "cont" => {
            check(args, &[])?;
            cont(sim);
            obj([])
        }
        "stop" => {
            check(args, &[])?;
            stop(sim);
            obj([])
        }
        "query-version" => {
            check(args, &[])?;
            version(sim)
        }
        "quit" => {
            check(args, &[])?;
            return Ok(Command::Quit);
        }
        _ => {
            return Err(QmpError::command_not_found(format!(
                "The command {name} has not been found"
            )))
        }
    };
    Ok(Command::Reply(ret))
}

/// Checks the arguments of `qmp_capabilities` (`enable`: a list of `QMPCapability`, whose
/// only value is `oob`) and returns the capabilities asked for.
fn check_capabilities(args: &Map<String, Value>) -> Result<Vec<String>, QmpError> {
    let mut caps = Vec::new();
    if let Some(enable) = args.get("enable") {
        let Some(list) = enable.as_array() else {
            return Err(QmpError::generic(
                "Invalid parameter type for 'enable', expected: array",
            ));
        };
        for (i, cap) in list.iter().enumerate() {
            match cap.as_str() {
                None => {
                    return Err(QmpError::generic(format!(
                        "Invalid parameter type for 'enable[{i}]', expected: string"
                    )))
                }
                Some("oob") => caps.push("oob".to_string()),
                Some(other) => {
                    return Err(QmpError::generic(format!(
                        "Parameter 'enable[{i}]' does not accept value '{other}'"
                    )))
                }
            }
        }
    }
    if let Some(extra) = args.keys().find(|k| *k != "enable") {
        return Err(QmpError::generic(format!(
            "Parameter '{extra}' is unexpected"
        )));
    }
    Ok(caps)
}

/// Records `backup canceled` (unless an error is recorded: the first one wins, and a job
/// that ended `done` flips to `error` — pve-qemu's quirk), stops a running worker and
/// waits until it closed the target and set the end time.
fn backup_cancel(sim: &Sim) {
    let worker = {
        let mut st = sim.lock();
        match st.job.as_mut() {
            Some(job) => {
                job.record.set_error("backup canceled");
                if job.is_active() {
                    job.cancel.store(true, Ordering::SeqCst);
                    job.worker.take()
                } else {
                    None
                }
            }
            None => None,
        }
    };
    if let Some(handle) = worker {
        let _ = handle.join();
    }
}

/// `cont`: a VM that is not running resumes (RESUME); a running one stays silent.
fn cont(sim: &Sim) {
    let was = std::mem::replace(&mut sim.lock().run_state, RunState::Running);
    if was != RunState::Running {
        sim.out.event("RESUME", None);
    }
}

/// `stop`: only a running VM stops (and says so).
fn stop(sim: &Sim) {
    let stopped = {
        let mut st = sim.lock();
        let running = st.run_state == RunState::Running;
        if running {
            st.run_state = RunState::Paused;
        }
        running
    };
    if stopped {
        sim.out.event("STOP", None);
    }
}

/// `VersionInfo` (also the `version` of the greeting).
pub fn version(sim: &Sim) -> J {
    let (major, minor, micro) = sim.cfg.version;
    obj([
        (
            "qemu",
            obj([
                ("major", major.into()),
                ("minor", minor.into()),
                ("micro", micro.into()),
            ]),
        ),
        ("package", sim.cfg.package.as_str().into()),
    ])
}

/// `ProxmoxSupportStatus` of a current build.
fn proxmox_support() -> J {
    obj([
        ("pbs-dirty-bitmap", true.into()),
        ("query-bitmap-info", true.into()),
        ("pbs-dirty-bitmap-savevm", true.into()),
        ("pbs-dirty-bitmap-migration", true.into()),
        ("pbs-masterkey", true.into()),
        ("pbs-library-version", "1.5.2 (UNKNOWN)".into()),
        ("backup-access-api", true.into()),
        ("backup-fleecing", true.into()),
        ("backup-max-workers", true.into()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(v: Value) -> Result<String, String> {
        envelope(v.as_object().unwrap())
            .map(|(n, _)| n.to_string())
            .map_err(|e| e.desc)
    }

    #[test]
    fn envelope_rules() {
        assert_eq!(env(json!({"execute": "x", "id": [1]})), Ok("x".into()));
        assert_eq!(
            env(json!({"execute": "x", "foo": 1})),
            Err("QMP input member 'foo' is unexpected".into())
        );
        assert_eq!(
            env(json!({"exec-oob": "x"})),
            Err("QMP input member 'exec-oob' is unexpected".into())
        );
        assert_eq!(
            env(json!({"execute": 1})),
            Err("QMP input member 'execute' must be a string".into())
        );
        assert_eq!(
            env(json!({"execute": "x", "arguments": []})),
            Err("QMP input member 'arguments' must be an object".into())
        );
        assert_eq!(
            env(json!({"id": 1})),
            Err("QMP input lacks member 'execute'".into())
        );
    }

    #[test]
    fn capabilities_arguments() {
        let c = |v: Value| check_capabilities(v.as_object().unwrap()).map_err(|e| e.desc);
        assert_eq!(c(json!({})), Ok(vec![]));
        assert_eq!(c(json!({"enable": []})), Ok(vec![]));
        assert_eq!(c(json!({"enable": ["oob"]})), Ok(vec!["oob".to_string()]));
        assert_eq!(
            c(json!({"enable": ["x"]})),
            Err("Parameter 'enable[0]' does not accept value 'x'".into())
        );
        assert_eq!(
            c(json!({"x": 1})),
            Err("Parameter 'x' is unexpected".into())
        );
    }
}
