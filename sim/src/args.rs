//! Command line: clap (the flags in `cli.rs`) into [`Mode`], every value checked here with
//! the texts of the hand-rolled parser that came before (`--flag value` or `--flag=value`).

use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::FromArgMatches;

use crate::cli;

/// What the process was asked to do.
#[derive(Debug)]
pub enum Mode {
    /// Print this text (`--help`, `-V`) and exit 0.
    Help(String),
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

/// Parses the arguments (without the program name).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Mode, String> {
    let raw: Vec<String> = args.into_iter().collect();
    // clap takes only one value after '=': `--dump-gen-disk=NAME=SIZE PATH` is split.
    let split = split_inline(&raw, "--dump-gen-disk");
    let matches = match cli::command()
        .try_get_matches_from(std::iter::once("pve-qmp-sim".to_string()).chain(split))
    {
        Ok(m) => m,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            return Ok(Mode::Help(e.to_string()))
        }
        Err(e) => return Err(clap_error(&e, &raw)),
    };
    let cli = cli::Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?;
    let mut cfg = Config {
        socket: PathBuf::new(),
        disks: Vec::new(),
        rate: cli
            .rate
            .as_deref()
            .map(|rate| positive_size("--rate", rate))
            .transpose()?,
        package: cli.package,
        version: version("--version", &cli.version)?,
        state: match cli.state.as_str() {
            "prelaunch" => RunState::Prelaunch,
            "running" => RunState::Running,
            v => return Err(bad("--state", v, "prelaunch or running")),
        },
        seed_era: cli.seed_era,
        finishing_ms: opt_number("--finishing-ms", &cli.finishing_ms)?,
        pbs_connect_delay_ms: opt_number("--pbs-connect-delay-ms", &cli.pbs_connect_delay_ms)?,
        proxmox_support: !cli.no_proxmox_support,
        record: opt_path("--record", cli.record)?,
        sim_tick: cli.sim_tick,
        smooth_progress: cli.smooth_progress,
        pidfile: opt_path("--pidfile", cli.pidfile)?,
        // What the re-exec passes on (see `Config::args`).
        args: split_inline(&raw, "--pidfile"),
        faults: Faults {
            die_at: opt_percent("--fault-die-at", &cli.fault_die_at)?,
            error_at: match &cli.fault_error_at {
                Some(v) => {
                    let (p, msg) = match v.split_once(':') {
                        Some((p, m)) => (p, m.to_string()),
                        None => (
                            v.as_str(),
                            "job failed with err -5 - Input/output error".into(),
                        ),
                    };
                    Some((percent("--fault-error-at", p)?, msg))
                }
                None => None,
            },
            wrong_uuid: cli.fault_wrong_uuid,
            hang: nonempty_all("--fault-hang", cli.fault_hang)?,
            garbage: nonempty_all("--fault-garbage", cli.fault_garbage)?,
            slow_ms: opt_number("--fault-slow-ms", &cli.fault_slow_ms)?,
            count_mismatch: cli.fault_count_mismatch,
            write_error_at: opt_percent("--fault-write-error-at", &cli.fault_write_error_at)?,
        },
    };
    // Devices in command line order: `--disk` and `--gen-disk` interleaved as given.
    let mut disks: Vec<(usize, DiskSpec)> = Vec::new();
    for (index, v) in indexed(&matches, "disk", &cli.disk) {
        let (name, path) = name_value("--disk", v)?;
        let path = PathBuf::from(path);
        disks.push((index, DiskSpec::File { name, path }));
    }
    for (index, v) in indexed(&matches, "gen_disk", &cli.gen_disk) {
        let (name, size) = name_value("--gen-disk", v)?;
        let size = positive_size("--gen-disk", &size)?;
        disks.push((index, DiskSpec::Generated { name, size }));
    }
    disks.sort_by_key(|(index, _)| *index);
    cfg.disks = disks.into_iter().map(|(_, d)| d).collect();
    if let Some(dump) = cli.dump_gen_disk {
        let flag = "--dump-gen-disk";
        // Its two values end the command line.
        let last = matches.indices_of("dump_gen_disk").and_then(Iterator::max);
        if let Some(after) = matches
            .ids()
            .filter(|id| id.as_str() != "dump_gen_disk")
            .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
            .find(|id| matches.indices_of(id.as_str()).and_then(Iterator::max) > last)
        {
            let name = after.as_str().replace('_', "-");
            return Err(format!("unexpected argument '--{name}' after '{flag}'"));
        }
        let (name, size) = name_value(flag, &dump[0])?;
        let size = positive_size(flag, &size)?;
        let path = PathBuf::from(&dump[1]);
        return Ok(Mode::DumpGenDisk { name, size, path });
    }
    cfg.socket = PathBuf::from(nonempty(
        "--socket",
        cli.socket.ok_or("option '--socket PATH' is required")?,
    )?);
    for (i, d) in cfg.disks.iter().enumerate() {
        if cfg.disks[..i].iter().any(|e| e.name() == d.name()) {
            return Err(format!("device name '{}' given twice", d.name()));
        }
    }
    Ok(Mode::Serve(Box::new(cfg)))
}

/// The arguments with `FLAG=VALUE` split into `FLAG` and `VALUE`.
fn split_inline(args: &[String], flag: &str) -> Vec<String> {
    args.iter()
        .flat_map(|a| match a.split_once('=') {
            Some((f, v)) if f == flag => vec![f.to_string(), v.to_string()],
            _ => vec![a.clone()],
        })
        .collect()
}

/// The values of a repeatable option with their positions on the command line.
fn indexed<'a>(
    matches: &'a clap::ArgMatches,
    id: &str,
    values: &'a [String],
) -> impl Iterator<Item = (usize, &'a String)> {
    matches.indices_of(id).into_iter().flatten().zip(values)
}

/// A clap error in the texts of the hand-rolled parser this replaced (tests and scripts
/// match them).
fn clap_error(e: &clap::Error, raw: &[String]) -> String {
    let context = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(s)) => s.join(" "),
        _ => String::new(),
    };
    // "--socket <PATH>": the flag and what its value is.
    let arg = context(ContextKind::InvalidArg);
    let (flag, what) = arg.split_once(' ').unwrap_or((&arg, ""));
    let what = what.replace(['<', '>'], "");
    match e.kind() {
        ErrorKind::UnknownArgument => {
            let dumped = raw.iter().any(|a| a.starts_with("--dump-gen-disk"));
            if dumped && !arg.starts_with('-') {
                format!("unexpected argument '{arg}' after '--dump-gen-disk'")
            } else {
                format!("unknown option '{arg}'")
            }
        }
        ErrorKind::InvalidValue if flag == "--dump-gen-disk" => {
            format!("option '{flag}' needs a value (NAME=SIZE)")
        }
        ErrorKind::InvalidValue => format!("option '{flag}' needs a value ({what})"),
        ErrorKind::WrongNumberOfValues => format!("option '{flag}' needs NAME=SIZE and PATH"),
        ErrorKind::TooManyValues => format!("option '{flag}' takes no value"),
        _ => e
            .to_string()
            .trim_end()
            .trim_start_matches("error: ")
            .to_string(),
    }
}

fn bad(flag: &str, value: &str, expected: &str) -> String {
    format!("invalid value '{value}' for '{flag}': expected {expected}")
}

fn opt_number(flag: &str, v: &Option<String>) -> Result<u64, String> {
    v.as_deref().map_or(Ok(0), |v| number(flag, v))
}

fn opt_percent(flag: &str, v: &Option<String>) -> Result<Option<u8>, String> {
    v.as_deref().map(|v| percent(flag, v)).transpose()
}

fn opt_path(flag: &str, v: Option<String>) -> Result<Option<PathBuf>, String> {
    v.map(|v| nonempty(flag, v).map(PathBuf::from)).transpose()
}

fn nonempty_all(flag: &str, v: Vec<String>) -> Result<Vec<String>, String> {
    v.into_iter().map(|v| nonempty(flag, v)).collect()
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
                &["--dump-gen-disk", "a=1M", "/x", "y"],
                "unexpected argument 'y' after",
            ),
            (
                &["--dump-gen-disk", "a=1M", "/x", "--seed-era"],
                "'--seed-era' after",
            ),
            (&["--dump-gen-disk", "a=1M"], "needs NAME=SIZE and PATH"),
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
    fn disks_in_command_line_order() {
        let m = parse_strs(&[
            "--disk=b=/tmp/b.raw",
            "--socket",
            "s",
            "--gen-disk",
            "a=1M",
            "--disk",
            "c=/tmp/c.raw",
            "--pidfile=/tmp/p",
        ])
        .unwrap();
        let Mode::Serve(c) = m else { panic!() };
        let names: Vec<&str> = c.disks.iter().map(DiskSpec::name).collect();
        assert_eq!(names, ["b", "a", "c"]);
        assert_eq!(c.args[c.args.len() - 2..], ["--pidfile", "/tmp/p"]);
        // The last of a repeated option counts; values may start with '-'.
        let m = parse_strs(&[
            "--socket", "s", "--rate", "1M", "--rate", "2M", "--record", "-x",
        ]);
        let Ok(Mode::Serve(c)) = m else { panic!() };
        assert_eq!(
            (c.rate, c.record),
            (Some(2 << 20), Some(PathBuf::from("-x")))
        );
    }

    #[test]
    fn dump_mode_and_help() {
        let m = parse_strs(&["--dump-gen-disk", "drive-scsi0=1M", "/tmp/out"]).unwrap();
        assert!(matches!(m, Mode::DumpGenDisk { size: 1048576, .. }));
        let m = parse_strs(&["--dump-gen-disk=drive-scsi0=2M", "/tmp/out"]).unwrap();
        assert!(matches!(m, Mode::DumpGenDisk { size: 2097152, .. }));
        assert!(matches!(parse_strs(&["--help"]).unwrap(), Mode::Help(_)));
    }
}
