//! Command line: a hand-rolled parser (`--flag value` or `--flag=value`) into [`Mode`].

use std::path::PathBuf;

/// What the process was asked to do.
#[derive(Debug)]
pub enum Mode {
    /// Print the usage text and exit 0.
    Help,
    /// Serve the monitor socket.
    Serve(Box<Config>),
    /// Write the data of a generated disk to a file and exit (lets tests compare images).
    DumpGenDisk {
        /// Device name; it seeds the generator.
        name: String,
        /// Size in bytes.
        size: u64,
        /// Output file.
        path: PathBuf,
    },
}

/// Where a device's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskSpec {
    /// A raw image file.
    File {
        /// Device name, e.g. `drive-scsi0`.
        name: String,
        /// Path of the image.
        path: PathBuf,
    },
    /// Deterministic generated data (see `disk.rs`).
    Generated {
        /// Device name; it seeds the generator.
        name: String,
        /// Size in bytes.
        size: u64,
    },
}

impl DiskSpec {
    /// The device name.
    pub fn name(&self) -> &str {
        match self {
            DiskSpec::File { name, .. } | DiskSpec::Generated { name, .. } => name,
        }
    }
}

/// Run state of the simulated VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Started with `-S`, never resumed.
    Prelaunch,
    /// Running.
    Running,
    /// Stopped with `stop`.
    Paused,
}

impl RunState {
    /// The name `query-status` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Prelaunch => "prelaunch",
            RunState::Running => "running",
            RunState::Paused => "paused",
        }
    }
}

/// Injected faults.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Exit abruptly (code 9) when the backup reaches this percentage.
    pub die_at: Option<u8>,
    /// Fail the job at this percentage with this message.
    pub error_at: Option<(u8, String)>,
    /// Report another uuid in `query-backup` than `backup` returned.
    pub wrong_uuid: bool,
    /// Commands never answered.
    pub hang: Vec<String>,
    /// Commands answered with bytes that are not JSON.
    pub garbage: Vec<String>,
    /// Delay before every reply, in milliseconds.
    pub slow_ms: u64,
    /// At `done`, report `transferred = total - 65536`.
    pub count_mismatch: bool,
    /// Fail the VMA stream write at this percentage as if with EIO.
    pub write_error_at: Option<u8>,
}

/// Everything `--socket` mode needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Path of the listening unix socket.
    pub socket: PathBuf,
    /// Devices in command line order.
    pub disks: Vec<DiskSpec>,
    /// Rate cap in bytes per second (`None` = unlimited).
    pub rate: Option<u64>,
    /// Package string of the greeting and `query-version`.
    pub package: String,
    /// QEMU version (major, minor, micro).
    pub version: (u64, u64, u64),
    /// Initial run state.
    pub state: RunState,
    /// Mimic pve-qemu of mid-2020 (see `--help`).
    pub seed_era: bool,
    /// Length of the `finishing` phase in milliseconds.
    pub finishing_ms: u64,
    /// Delay of a PBS `backup` reply in milliseconds.
    pub pbs_connect_delay_ms: u64,
    /// Whether `query-proxmox-support` and `query-pbs-bitmap-info` exist.
    pub proxmox_support: bool,
    /// File receiving every parsed request as one compact JSON line.
    pub record: Option<PathBuf>,
    /// Send a `SIM_TICK` event before every `query-backup` reply (real QEMU never does).
    pub sim_tick: bool,
    /// VMA: publish the counters after every cluster instead of in pve-qemu's bursts.
    pub smooth_progress: bool,
    /// Pid file written once the socket listens, removed on a clean exit (QEMU's `-pidfile`).
    pub pidfile: Option<PathBuf>,
    /// The arguments as given (program name excluded), with `--pidfile=PATH` split into
    /// `--pidfile` and `PATH`: what the re-exec as `qemu-system-pve-sim` passes on.
    pub args: Vec<String>,
    /// Injected faults.
    pub faults: Faults,
}

/// The text of `--help`.
pub const USAGE: &str = "\
pve-qmp-sim: simulator of Proxmox QEMU's QMP monitor (backup, query-backup, backup-cancel,
getfd, ...) with fault injection. One client at a time, like QEMU.

Usage: pve-qmp-sim --socket PATH [OPTIONS]
       pve-qmp-sim --dump-gen-disk NAME=SIZE PATH
       pve-qmp-sim --help

Options:
  --socket PATH              unix socket to listen on (required); a stale socket file is
                             replaced, the file is removed on exit
  --disk NAME=PATH           raw image file PATH as block device NAME (e.g. drive-scsi0);
                             repeatable
  --gen-disk NAME=SIZE       generated device NAME of SIZE bytes (suffix K, M, G or T,
                             binary): pseudo-random data in some regions, zeros and holes
                             elsewhere, derived from NAME only; repeatable
  --rate BYTES_PER_SEC       cap of the backup progress (bytes read per second, suffix
                             K/M/G/T allowed); default unlimited (PBS: 1G); a positive
                             'speed' argument of 'backup' lowers it further
  --smooth-progress          VMA: publish transferred/zero-bytes after every 64 KiB cluster.
                             Default, as pve-qemu shows it: 1 MiB from the start (the very
                             first query-backup after 'backup' shows it), then 1 MiB + k*2 MiB
                             once the copy got there (stalls between bursts), the full count
                             when all clusters are copied. PBS jobs always step in 4 MiB chunks
  --package STR              package string of the greeting (default pve-qemu-kvm_11.0.0-2)
  --version X.Y.Z            QEMU version of the greeting (default 11.0.0)
  --state prelaunch|running  initial VM run state (default running)
  --seed-era                 behave like pve-qemu of mid-2020: query-backup without
                             'finishing', 'dirty' and 'reused'; error text
                             'previous backup not finished'
  --finishing-ms N           PBS jobs only: after the last chunk, stay active with
                             finishing=true for N ms (the manifest upload). VMA jobs never
                             report finishing=true, as with pve-qemu: while the writer flushes
                             into a full pipe they stay active with transferred == total and
                             finishing=false, and are done once the fd is closed
  --pbs-connect-delay-ms N   delay the reply of a PBS 'backup' by N ms (connection setup)
  --no-proxmox-support       query-proxmox-support and query-pbs-bitmap-info do not exist
  --record FILE              append every parsed request to FILE, one compact JSON line each
  --sim-tick                 send a SIM_TICK event (data: {\"query\": N}) before every
                             query-backup reply; real QEMU has no such event. Events QEMU
                             sends are always sent: STOP, RESUME, SHUTDOWN, and for the backup
                             jobs (id = drive name) JOB_STATUS_CHANGE, BLOCK_JOB_COMPLETED and
                             BLOCK_JOB_CANCELLED
  --pidfile PATH             like QEMU's -pidfile: write the pid (decimal, newline) to PATH
                             once the socket listens (via a temporary file and rename),
                             remove it on quit, SIGTERM and SIGINT; after SIGKILL or a crash
                             it stays behind. With this flag the process re-executes itself
                             as 'qemu-system-pve-sim --pidfile PATH ...' (same pid, same
                             arguments, '--pidfile=PATH' split in two), because qemu-server's
                             vm_running_locally accepts a pid file only if the process's
                             argv[0] ends in 'kvm' or 'qemu-system-*' and its command line
                             has '-pidfile'/'--pidfile' followed by the path as an argument
                             of its own
  --dump-gen-disk NAME=SIZE PATH
                             write the data of generated device NAME of SIZE to PATH, exit
  --help                     show this text

Faults (PERCENT is 0..100 of the bytes to back up):
  --fault-die-at PERCENT     exit at once with code 9 when the backup reaches PERCENT
  --fault-error-at PERCENT[:MSG]
                             fail the job at PERCENT with MSG (default
                             'job failed with err -5 - Input/output error')
  --fault-write-error-at PERCENT
                             fail the VMA stream write at PERCENT as if with EIO
  --fault-wrong-uuid         query-backup reports another uuid than 'backup' returned
  --fault-hang CMD           never reply to CMD and stop reading that connection (repeatable)
  --fault-garbage CMD        run CMD but reply with bytes that are not JSON (repeatable)
  --fault-slow-ms N          delay every reply by N ms
  --fault-count-mismatch     at done, report transferred = total - 65536

Exit codes: 0 normal end (quit, SIGTERM, SIGINT), 1 runtime error, 2 usage error,
9 --fault-die-at. Killed by SIGSEGV (no core file, no reply) when a 'backup' devlist names
a device twice, e.g. 'drive-scsi0;drive-scsi0': pve-qemu 10.0.2 crashes there while
creating the jobs (after the target and config checks); an empty name is still
'Device '' not found'.
";

/// Parses the arguments (without the program name).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Mode, String> {
    let mut it = args.into_iter();
    let mut socket = None;
    let mut cfg = Config {
        socket: PathBuf::new(),
        disks: Vec::new(),
        rate: None,
        package: "pve-qemu-kvm_11.0.0-2".into(),
        version: (11, 0, 0),
        state: RunState::Running,
        seed_era: false,
        finishing_ms: 0,
        pbs_connect_delay_ms: 0,
        proxmox_support: true,
        record: None,
        sim_tick: false,
        smooth_progress: false,
        pidfile: None,
        args: Vec::new(),
        faults: Faults::default(),
    };
    // Everything taken from `it` is copied to `cfg.args` (see `Config::args`).
    let mut seen: Vec<String> = Vec::new();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        match (&inline, flag.as_str()) {
            (Some(v), "--pidfile") => seen.extend([flag.clone(), v.clone()]),
            _ => seen.push(arg.clone()),
        }
        let mut value = |what: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => {
                    let v = it
                        .next()
                        .ok_or_else(|| format!("option '{flag}' needs a value ({what})"))?;
                    seen.push(v.clone());
                    Ok(v)
                }
            }
        };
        match flag.as_str() {
            "--help" | "-h" => return Ok(Mode::Help),
            "--socket" => socket = Some(PathBuf::from(nonempty(&flag, value("PATH")?)?)),
            "--disk" => {
                let (name, path) = name_value(&flag, &value("NAME=PATH")?)?;
                cfg.disks.push(DiskSpec::File {
                    name,
                    path: PathBuf::from(path),
                });
            }
            "--gen-disk" => {
                let (name, size) = name_value(&flag, &value("NAME=SIZE")?)?;
                let size = positive_size(&flag, &size)?;
                cfg.disks.push(DiskSpec::Generated { name, size });
            }
            "--dump-gen-disk" => {
                let (name, size) = name_value(&flag, &value("NAME=SIZE")?)?;
                let size = positive_size(&flag, &size)?;
                let path = it
                    .next()
                    .ok_or_else(|| format!("option '{flag}' needs NAME=SIZE and PATH"))?;
                if let Some(extra) = it.next() {
                    return Err(format!("unexpected argument '{extra}' after '{flag}'"));
                }
                return Ok(Mode::DumpGenDisk {
                    name,
                    size,
                    path: PathBuf::from(path),
                });
            }
            "--rate" => cfg.rate = Some(positive_size(&flag, &value("BYTES_PER_SEC")?)?),
            "--package" => cfg.package = value("STR")?,
            "--version" => cfg.version = version(&flag, &value("X.Y.Z")?)?,
            "--state" => {
                cfg.state = match value("prelaunch|running")?.as_str() {
                    "prelaunch" => RunState::Prelaunch,
                    "running" => RunState::Running,
                    v => return Err(bad(&flag, v, "prelaunch or running")),
                }
            }
            "--seed-era" => cfg.seed_era = true,
            "--finishing-ms" => cfg.finishing_ms = number(&flag, &value("N")?)?,
            "--pbs-connect-delay-ms" => cfg.pbs_connect_delay_ms = number(&flag, &value("N")?)?,
            "--no-proxmox-support" => cfg.proxmox_support = false,
            "--record" => cfg.record = Some(PathBuf::from(nonempty(&flag, value("FILE")?)?)),
            "--sim-tick" => cfg.sim_tick = true,
            "--smooth-progress" => cfg.smooth_progress = true,
            "--pidfile" => cfg.pidfile = Some(PathBuf::from(nonempty(&flag, value("PATH")?)?)),
            "--fault-die-at" => cfg.faults.die_at = Some(percent(&flag, &value("PERCENT")?)?),
            "--fault-error-at" => {
                let v = value("PERCENT[:MSG]")?;
                let (p, msg) = match v.split_once(':') {
                    Some((p, m)) => (p, m.to_string()),
                    None => (
                        v.as_str(),
                        "job failed with err -5 - Input/output error".into(),
                    ),
                };
                cfg.faults.error_at = Some((percent(&flag, p)?, msg));
            }
            "--fault-write-error-at" => {
                cfg.faults.write_error_at = Some(percent(&flag, &value("PERCENT")?)?)
            }
            "--fault-wrong-uuid" => cfg.faults.wrong_uuid = true,
            "--fault-hang" => cfg.faults.hang.push(nonempty(&flag, value("CMD")?)?),
            "--fault-garbage" => cfg.faults.garbage.push(nonempty(&flag, value("CMD")?)?),
            "--fault-slow-ms" => cfg.faults.slow_ms = number(&flag, &value("N")?)?,
            "--fault-count-mismatch" => cfg.faults.count_mismatch = true,
            _ => return Err(format!("unknown option '{arg}'")),
        }
        if inline.is_some() && takes_no_value(&flag) {
            return Err(format!("option '{flag}' takes no value"));
        }
    }
    cfg.socket = socket.ok_or("option '--socket PATH' is required")?;
    cfg.args = seen;
    for (i, d) in cfg.disks.iter().enumerate() {
        if cfg.disks[..i].iter().any(|e| e.name() == d.name()) {
            return Err(format!("device name '{}' given twice", d.name()));
        }
    }
    Ok(Mode::Serve(Box::new(cfg)))
}

fn takes_no_value(flag: &str) -> bool {
    matches!(
        flag,
        "--help"
            | "-h"
            | "--seed-era"
            | "--no-proxmox-support"
            | "--sim-tick"
            | "--smooth-progress"
            | "--fault-wrong-uuid"
            | "--fault-count-mismatch"
    )
}

fn bad(flag: &str, value: &str, expected: &str) -> String {
    format!("invalid value '{value}' for '{flag}': expected {expected}")
}

fn nonempty(flag: &str, v: String) -> Result<String, String> {
    if v.is_empty() {
        Err(bad(flag, &v, "a non-empty value"))
    } else {
        Ok(v)
    }
}

fn name_value(flag: &str, v: &str) -> Result<(String, String), String> {
    match v.split_once('=') {
        Some((n, rest)) if !n.is_empty() && !rest.is_empty() => Ok((n.into(), rest.into())),
        _ => Err(bad(flag, v, "NAME=VALUE")),
    }
}

fn number(flag: &str, v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .map_err(|_| bad(flag, v, "a non-negative integer"))
}

fn percent(flag: &str, v: &str) -> Result<u8, String> {
    match v.parse::<u8>() {
        Ok(p) if p <= 100 => Ok(p),
        _ => Err(bad(flag, v, "an integer percentage 0..100")),
    }
}

/// Parses `N`, `NK`, `NM`, `NG` or `NT` (binary multiples, case-insensitive); must be > 0.
fn positive_size(flag: &str, v: &str) -> Result<u64, String> {
    let err = || bad(flag, v, "a positive size like 4096, 64K, 32M or 1G");
    let (digits, shift) = match v.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&v[..v.len() - 1], 10),
        Some('M') => (&v[..v.len() - 1], 20),
        Some('G') => (&v[..v.len() - 1], 30),
        Some('T') => (&v[..v.len() - 1], 40),
        _ => (v, 0),
    };
    let n: u64 = digits.parse().map_err(|_| err())?;
    let size = n.checked_mul(1u64 << shift).ok_or_else(err)?;
    // Sizes travel as QAPI 'int' (i64) on the wire.
    if size == 0 || size > i64::MAX as u64 {
        return Err(err());
    }
    Ok(size)
}

fn version(flag: &str, v: &str) -> Result<(u64, u64, u64), String> {
    let parts: Vec<&str> = v.split('.').collect();
    let nums: Result<Vec<u64>, _> = parts.iter().map(|p| p.parse::<u64>()).collect();
    match nums {
        Ok(n) if n.len() == 3 => Ok((n[0], n[1], n[2])),
        _ => Err(bad(flag, v, "X.Y.Z")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(a: &[&str]) -> Result<Mode, String> {
        parse(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn full_command_line() {
        let m = parse_strs(&[
            "--socket=/tmp/s",
            "--gen-disk",
            "drive-scsi0=32M",
            "--disk",
            "drive-virtio1=/tmp/x.raw",
            "--rate",
            "1G",
            "--version",
            "5.0.0",
            "--state",
            "prelaunch",
            "--fault-error-at",
            "50:boom: it failed",
            "--fault-hang",
            "query-backup",
            "--seed-era",
        ])
        .unwrap();
        let Mode::Serve(c) = m else { panic!() };
        assert_eq!(c.socket, PathBuf::from("/tmp/s"));
        assert_eq!(
            c.disks[0],
            DiskSpec::Generated {
                name: "drive-scsi0".into(),
                size: 32 << 20
            }
        );
        assert_eq!(c.disks[1].name(), "drive-virtio1");
        assert_eq!(c.rate, Some(1 << 30));
        assert_eq!(c.version, (5, 0, 0));
        assert_eq!(c.state, RunState::Prelaunch);
        assert_eq!(c.faults.error_at, Some((50, "boom: it failed".into())));
        assert_eq!(c.faults.hang, ["query-backup"]);
        assert!(c.seed_era);
    }

    #[test]
    fn errors() {
        for (args, want) in [
            (&["--bogus"][..], "unknown option '--bogus'"),
            (&["--gen-disk", "d=0"], "invalid value '0'"),
            (&["--gen-disk", "d"], "expected NAME=VALUE"),
            (&["--rate", "12X"], "invalid value '12X'"),
            (&["--fault-die-at", "101"], "percentage"),
            (&["--sim-tick=1"], "takes no value"),
            (&["--smooth-progress=yes"], "takes no value"),
            (&["--events"], "unknown option '--events'"),
            (&["--socket"], "needs a value"),
            (&["--pidfile="], "invalid value ''"),
            (&["--sim-tick"], "'--socket PATH' is required"),
            (
                &["--socket", "s", "--gen-disk", "a=1M", "--gen-disk", "a=2M"],
                "given twice",
            ),
        ] {
            let err = parse_strs(args).unwrap_err();
            assert!(err.contains(want), "{args:?}: {err}");
        }
    }

    #[test]
    fn dump_mode_and_help() {
        let m = parse_strs(&["--dump-gen-disk", "drive-scsi0=1M", "/tmp/out"]).unwrap();
        assert!(matches!(m, Mode::DumpGenDisk { size: 1048576, .. }));
        assert!(matches!(parse_strs(&["--help"]).unwrap(), Mode::Help));
    }
}
