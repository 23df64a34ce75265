//! The `backup` command: checks in pve-qemu's order, target setup, job start.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use vma::uuid_string;

use crate::disk::PBS_CHUNK;
use crate::job::{BitmapAction, BitmapInfo, BitmapState, Job, Record};
use crate::qapi::{bool_arg, int_arg, opt, req, str_arg, Param, QmpError, Ty};
use crate::qjson::{obj, J};
use crate::state::{Sim, State};
use crate::target::Target;
use crate::worker::{self, Device, Kind, Plan, Publish};

/// Arguments of `backup`, in pve-qemu 11's schema order.
pub const PARAMS: &[Param] = &[
    req("backup-file", Ty::Str),
    opt("password", Ty::Str),
    opt("keyfile", Ty::Str),
    opt("key-password", Ty::Str),
    opt("master-keyfile", Ty::Str),
    opt("fingerprint", Ty::Str),
    opt("backup-ns", Ty::Str),
    opt("backup-id", Ty::Str),
    opt("backup-time", Ty::Int),
    opt("use-dirty-bitmap", Ty::Bool),
    opt("compress", Ty::Bool),
    opt("encrypt", Ty::Bool),
    opt("format", Ty::Enum(&["vma", "pbs"])),
    opt("config-file", Ty::Str),
    opt("firewall-file", Ty::Str),
    opt("devlist", Ty::Str),
    opt("speed", Ty::Int),
    opt("max-workers", Ty::Int),
    opt("fleecing", Ty::Bool),
];

/// Rate of PBS progress when neither `--rate` nor `speed` limits it.
const PBS_DEFAULT_RATE: u64 = 1 << 30;

/// Runs `backup` (arguments already checked against [`PARAMS`]); returns `{"UUID": ...}`.
pub fn backup(sim: &Arc<Sim>, args: &Map<String, Value>) -> Result<J, QmpError> {
    // 1. A registered, unfinished job. A finished job's worker is reaped here.
    let old_worker = {
        let mut st = sim.lock();
        match st.job.as_mut() {
            Some(job) if job.is_active() => {
                return Err(QmpError::generic(if sim.cfg.seed_era {
                    "previous backup not finished"
                } else {
                    "previous backup for target 'Proxmox' not finished"
                }))
            }
            Some(job) => job.worker.take(),
            None => None,
        }
    };
    if let Some(h) = old_worker {
        let _ = h.join();
    }

    // 2. Devices (and fleecing companions).
    let fleecing = bool_arg(args, "fleecing").unwrap_or(false);
    let devices = select_devices(sim, str_arg(args, "devlist"), fleecing)?;

    // 4./5. PBS connection or VMA target.
    let pbs = str_arg(args, "format") == Some("pbs");
    let backup_file = str_arg(args, "backup-file").unwrap_or_default();
    let cancel = Arc::new(AtomicBool::new(false));
    let target = if pbs {
        for p in ["password", "backup-id", "backup-time"] {
            if !args.contains_key(p) {
                return Err(QmpError::generic(format!("missing parameter '{p}'")));
            }
        }
        std::thread::sleep(Duration::from_millis(sim.cfg.pbs_connect_delay_ms));
        None
    } else {
        Some(open_target(sim, backup_file, cancel.clone())?)
    };
    let fail = |target: Option<Target>, e: QmpError| {
        if let Some(t) = target {
            t.abandon();
        }
        Err(e)
    };

    // 7. Config blobs.
    let configs = match read_configs(args) {
        Ok(c) => c,
        Err(e) => return fail(target, e),
    };
    // 8. Job creation: one job per node, so the second job of a device listed twice fails
    // ("Node '...' is busy"), and pve-qemu crashes cleaning up after that: the cleanup loop
    // of create_backup_jobs_bh (proxmox/pve-qemu pve-backup.c) ends in job_unref on NULL.
    if devices
        .iter()
        .enumerate()
        .any(|(i, d)| devices[..i].contains(d))
    {
        crash_like_qemu();
    }
    let (uuid, reported) = match (new_uuid(), new_uuid()) {
        (Ok(u), Ok(other)) => (u, if sim.cfg.faults.wrong_uuid { other } else { u }),
        (Err(e), _) | (_, Err(e)) => {
            return fail(
                target,
                QmpError::generic(format!("uuid generation failed: {e}")),
            )
        }
    };

    let speed = int_arg(args, "speed").filter(|s| *s > 0).map(|s| s as u64);
    let rate = [sim.cfg.rate, speed]
        .into_iter()
        .flatten()
        .min()
        .or(pbs.then_some(PBS_DEFAULT_RATE));
    let total: u64 = devices.iter().map(|&i| sim.disks[i].size).sum();

    let publish = Publish::for_job(!pbs, sim.cfg.smooth_progress);
    let mut st = sim.lock();
    let (plan_devices, dirty) = if pbs {
        pbs_bitmaps(sim, &mut st, &devices, args)
    } else {
        st.bitmap_info.clear();
        let devs = devices
            .iter()
            .map(|&disk| Device {
                disk,
                dirty_chunks: None,
            })
            .collect();
        (devs, total)
    };
    st.job = Some(Job {
        record: Record {
            total,
            dirty,
            transferred: publish.initial(dirty),
            reused: total - dirty,
            start_time: worker::now(),
            backup_file: backup_file.to_string(),
            uuid: uuid_string(&reported),
            ..Record::default()
        },
        cancel: cancel.clone(),
        worker: None,
    });
    let kind = match target {
        Some(target) => Kind::Vma {
            target,
            uuid,
            configs,
        },
        None => Kind::Pbs,
    };
    let plan = Plan {
        devices: plan_devices,
        kind,
        rate,
        speed: speed.unwrap_or(0),
        goal: dirty,
        publish,
    };
    let Some(job) = st.job.as_mut() else {
        return Err(QmpError::generic("backup job vanished"));
    };
    match worker::spawn(Arc::clone(sim), plan, cancel) {
        Ok(handle) => job.worker = Some(handle),
        Err(e) => {
            let msg = format!("backup_job_create failed: {e}");
            job.record.set_error(&msg);
            job.record.end_time = Some(worker::now());
            return Err(QmpError::generic(msg));
        }
    }
    Ok(obj([("UUID", uuid_string(&uuid).into())]))
}

/// Dies as pve-qemu 10.0.2 does on a devlist that names a device twice: by SIGSEGV, before
/// any reply, without a core file.
fn crash_like_qemu() -> ! {
    // SAFETY: plain syscalls on this process. Rust's runtime has a SIGSEGV handler (stack
    // overflow detection) that would return from a raised signal, hence SIG_DFL first;
    // RLIMIT_CORE 0 keeps a core file out of the working directory (and tells a core_pattern
    // helper not to keep one), PR_SET_DUMPABLE 0 keeps the helper from being started.
    unsafe {
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &none);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGSEGV);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(libc::SIGSEGV);
        // Not reached: SIGSEGV with its default action ends the process.
        libc::_exit(139)
    }
}

/// Splits like `g_strsplit_set(list, ",;:", -1)`: empty input gives no names, empty
/// pieces stay (and are not found).
fn split_devlist(list: &str) -> Vec<&str> {
    if list.is_empty() {
        Vec::new()
    } else {
        list.split([',', ';', ':']).collect()
    }
}

/// Indices of the selected devices in backup order.
fn select_devices(
    sim: &Sim,
    devlist: Option<&str>,
    fleecing: bool,
) -> Result<Vec<usize>, QmpError> {
    let find = |name: &str| {
        sim.disks
            .iter()
            .position(|d| d.name == name)
            .ok_or_else(|| QmpError::device_not_found(format!("Device '{name}' not found")))
    };
    let selected: Vec<usize> = match devlist {
        Some(list) => split_devlist(list)
            .into_iter()
            .map(find)
            .collect::<Result<_, _>>()?,
        // Fleecing images are nodes without a drive: not part of "all devices".
        None => (0..sim.disks.len())
            .filter(|&i| !sim.disks[i].name.ends_with("-fleecing"))
            .collect(),
    };
    if fleecing {
        for &i in &selected {
            let disk = &sim.disks[i];
            if disk.name.starts_with("drive-efidisk") || disk.name.starts_with("drive-tpmstate") {
                continue;
            }
            let name = format!("{}-fleecing", disk.name);
            let f = find(&name)?;
            if sim.disks[f].size != disk.size {
                return Err(QmpError::generic(format!(
                    "Size mismatch for '{name}' - sector count {} != {}",
                    sim.disks[f].size / 512,
                    disk.size / 512
                )));
            }
        }
    }
    if selected.is_empty() {
        return Err(QmpError::generic("empty device list"));
    }
    Ok(selected)
}

/// The VMA target: `/dev/fdname/NAME` takes the monitor's fd NAME, anything else but
/// `exec:` (not simulated) is a path.
fn open_target(sim: &Sim, backup_file: &str, cancel: Arc<AtomicBool>) -> Result<Target, QmpError> {
    match backup_file.strip_prefix("/dev/fdname/") {
        Some(name) => {
            let fd = sim.lock().fds.take(name)?;
            Target::from_fd(fd, cancel)
                .map_err(|e| QmpError::generic(format!("can't set O_NONBLOCK on fd - {e}")))
        }
        None if backup_file.starts_with("exec:") => Err(QmpError::generic(format!(
            "can't open file {backup_file} - exec: targets are not simulated by pve-qmp-sim"
        ))),
        None => Target::open(Path::new(backup_file), cancel).map_err(QmpError::generic),
    }
}

/// `config-file` then `firewall-file`, read now and stored under their basenames.
fn read_configs(args: &Map<String, Value>) -> Result<Vec<(String, Vec<u8>)>, QmpError> {
    let mut configs = Vec::new();
    for key in ["config-file", "firewall-file"] {
        let Some(path) = str_arg(args, key) else {
            continue;
        };
        let unreadable = || QmpError::generic(format!("unable to read file '{path}'"));
        let data = std::fs::read(path).map_err(|_| unreadable())?;
        let name = Path::new(path)
            .file_name()
            .ok_or_else(unreadable)?
            .to_string_lossy()
            .into_owned();
        configs.push((name, data));
    }
    Ok(configs)
}

/// Bitmap decisions of a PBS backup; returns the devices and the dirty byte total.
///
/// A bitmap belongs to a snapshot group (repository, namespace, id) and crypt mode; it is
/// `used` only if it was made by a successful backup of the same group, then the chunks
/// with index ≡ 0 (mod 8) count as dirty.
fn pbs_bitmaps(
    sim: &Sim,
    st: &mut State,
    devices: &[usize],
    args: &Map<String, Value>,
) -> (Vec<Device>, u64) {
    let use_bitmap = bool_arg(args, "use-dirty-bitmap").unwrap_or(false);
    let encrypt = bool_arg(args, "encrypt").unwrap_or(args.contains_key("keyfile"));
    let group = format!(
        "{}|{}|{}|{encrypt}",
        str_arg(args, "backup-file").unwrap_or_default(),
        str_arg(args, "backup-ns").unwrap_or_default(),
        str_arg(args, "backup-id").unwrap_or_default(),
    );
    let mut plan = Vec::new();
    let mut infos = Vec::new();
    for &i in devices {
        let disk = &sim.disks[i];
        let mut dirty_chunks = None;
        let action = if use_bitmap {
            match st.bitmaps.get(&disk.name) {
                Some(BitmapState::Valid(g)) if *g == group => {
                    let chunks = disk.size.div_ceil(PBS_CHUNK) as usize;
                    dirty_chunks = Some((0..chunks).map(|c| c % 8 == 0).collect::<Vec<_>>());
                    BitmapAction::Used
                }
                existing => {
                    let action = if existing.is_some() {
                        BitmapAction::Invalid
                    } else {
                        BitmapAction::New
                    };
                    st.bitmaps
                        .insert(disk.name.clone(), BitmapState::Pending(group.clone()));
                    action
                }
            }
        } else if st.bitmaps.remove(&disk.name).is_some() {
            BitmapAction::NotUsedRemoved
        } else {
            BitmapAction::NotUsed
        };
        let dirty = match &dirty_chunks {
            Some(map) => (0..map.len() as u64)
                .filter(|&c| map[c as usize])
                .map(|c| PBS_CHUNK.min(disk.size - c * PBS_CHUNK))
                .sum(),
            None => disk.size,
        };
        infos.push(BitmapInfo {
            drive: disk.name.clone(),
            action,
            size: disk.size,
            dirty,
        });
        plan.push(Device {
            disk: i,
            dirty_chunks,
        });
    }
    let dirty = infos.iter().map(|b| b.dirty).sum();
    st.bitmap_info = infos;
    (plan, dirty)
}

/// 16 random bytes as a version 4 uuid.
fn new_uuid() -> std::io::Result<[u8; 16]> {
    let mut u = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut u)?;
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devlist_split_like_glib() {
        assert!(split_devlist("").is_empty());
        assert_eq!(split_devlist("a,b;c:d"), ["a", "b", "c", "d"]);
        assert_eq!(split_devlist("a,"), ["a", ""]);
    }

    #[test]
    fn uuid_shape() {
        let s = uuid_string(&new_uuid().unwrap());
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert!(s
            .chars()
            .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}
