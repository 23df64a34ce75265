//! The VM's power state around a backup, step by step, for a backup assembled piecewise
//! (the job runs the same steps itself): qemu-server's `enforce_vm_running_for_backup`,
//! `resume_vm_after_job_start` and `restore_vm_power_state` on a handle that carries what
//! they learn from one step to the next.

use std::ffi::{c_char, c_void};

use super::args::null;
use super::callbacks::{vzdump_qemu_log_callback, vzdump_qemu_vm_callback, VmHost};
use super::qmp::vzdump_qemu_peer;
use super::result::*;
use super::{boundary, free_handle};
use crate::job::{Known, PowerState};
use crate::loose;

/// The power state of one VM during one backup.
pub struct vzdump_qemu_power {
    state: PowerState,
}

/// Creates the power state of the VM `peer`, which must be given by VM id
/// (`vzdump_qemu_peer_new_vmid`: the running check reads its pid file) and whose style
/// picks the seed's decisions or today's. `state_json` is NULL or what the plugin knows:
/// `{"vm-was-running": bool, "vm-was-paused": bool, "vm-stop-time": <epoch seconds>}`
/// (`$self->{vm_was_running}`, today's `vm_was_paused`, `$task->{vmstoptime}`; each
/// optional, unknown keys refused).
///
/// # Safety
/// Pointers are NULL or valid; `state_json` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_power_new(
    peer: *const vzdump_qemu_peer,
    state_json: *const c_char,
    out: *mut *mut vzdump_qemu_power,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let (out, peer) = (out!(out), arg_ref!(peer));
        let known: Known = match arg_json!(state_json) {
            Some(json) => loose::from_json(json)?,
            None => Known::default(),
        };
        let state = PowerState::new(
            &peer.peer,
            &peer.options,
            known.vm_was_running == Some(true),
            known.vm_was_paused == Some(true),
            known.vm_stop_time,
        )?;
        out.put(Box::into_raw(Box::new(vzdump_qemu_power { state })));
        Ok(())
    })
}

/// `enforce_vm_running_for_backup`: a VM whose QEMU runs counts as running before the
/// backup; else `starting kvm to execute backup task` and `start_cb` starts it paused (its
/// message is the failure, `VZDUMP_QEMU_BACKUP`).
///
/// # Safety
/// `power` is NULL or live; the callbacks are NULL or valid with `userdata` during the call.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_power_enforce_running(
    power: *mut vzdump_qemu_power,
    log_cb: vzdump_qemu_log_callback,
    start_cb: vzdump_qemu_vm_callback,
    userdata: *mut c_void,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let power = arg_mut!(power);
        let (Some(_), Some(_)) = (log_cb, start_cb) else {
            return Err(null(if log_cb.is_none() {
                "log_cb"
            } else {
                "start_cb"
            }));
        };
        // SAFETY: the caller passes callbacks valid with `userdata` for this call.
        let host = unsafe { VmHost::new(log_cb, start_cb, None, None, userdata) };
        power.state.enforce_running(&host)?;
        Ok(())
    })
}

/// `resume_vm_after_job_start`: for a VM that was running (today: and not paused),
/// `resuming VM again` (`resuming VM again after <n> seconds` the first time in stop mode)
/// and `cont` (today with 45 s); a failure of `cont` is returned.
///
/// # Safety
/// `power` is NULL or live; `log_cb` is NULL or valid with `userdata` during the call.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_power_resume_after_start(
    power: *mut vzdump_qemu_power,
    log_cb: vzdump_qemu_log_callback,
    userdata: *mut c_void,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let power = arg_mut!(power);
        log_cb.ok_or_else(|| null("log_cb"))?;
        // SAFETY: the caller passes a callback valid with `userdata` for this call.
        let host = unsafe { VmHost::new(log_cb, None, None, None, userdata) };
        power.state.resume_after_start(&host)?;
        Ok(())
    })
}

/// `restore_vm_power_state`: a VM that was not running is stopped with `stop_cb`
/// (`stopping kvm after backup task`) if QEMU is still in `prelaunch`, else kept (`kvm
/// status changed after backup ('<status>') - keep VM running`). Failures are warnings
/// (`VZDUMP_QEMU_LOG_WARN` lines), as qemu-server `warn`s them; the status query runs to
/// its end whatever signals arrive. Fails only on bad arguments.
///
/// # Safety
/// `power` is NULL or live; the callbacks are NULL or valid with `userdata` during the call.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_power_restore(
    power: *const vzdump_qemu_power,
    log_cb: vzdump_qemu_log_callback,
    stop_cb: vzdump_qemu_vm_callback,
    userdata: *mut c_void,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let power = arg_ref!(power);
        let (Some(_), Some(_)) = (log_cb, stop_cb) else {
            return Err(null(if log_cb.is_none() {
                "log_cb"
            } else {
                "stop_cb"
            }));
        };
        // SAFETY: the caller passes callbacks valid with `userdata` for this call.
        let host = unsafe { VmHost::new(log_cb, None, stop_cb, None, userdata) };
        power.state.restore(&host);
        Ok(())
    })
}

/// What the steps learnt, as `vzdump_qemu_power_new` takes it: `{"vm-was-running": bool,
/// "vm-was-paused": bool, "vm-stop-time": <epoch seconds> | null}` (`vm-was-running` set by
/// `vzdump_qemu_power_enforce_running`, `vm-stop-time` cleared by the first resume, as
/// qemu-server writes them back to the plugin and the task).
///
/// # Safety
/// `power` is NULL or live; `out_json` and `error` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_power_state_json(
    power: *const vzdump_qemu_power,
    out_json: *mut *mut c_char,
    error: *mut *mut c_char,
) -> vzdump_qemu_result {
    boundary(error, || {
        let (out, power) = (out!(out_json), arg_ref!(power));
        let json = serde_json::to_string(&power.state.known())
            .map_err(|e| super::args::invalid(format!("the power state as JSON - {e}")))?;
        out.put_str(&json);
        Ok(())
    })
}

/// Frees a power state. NULL is ignored.
///
/// # Safety
/// `power` is NULL or a live handle, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn vzdump_qemu_power_free(power: *mut vzdump_qemu_power) {
    // SAFETY: caller contract; the constructor makes handles with Box::into_raw.
    unsafe { free_handle(power) }
}
