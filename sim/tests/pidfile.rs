//! `--pidfile`: a pid file and a command line that pass qemu-server's `vm_running_locally`
//! (proxmox/qemu-server `src/PVE/QemuServer/Helpers.pm`), removed on a clean exit only.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{binary, Sim, TempDir, PATIENCE};
use serde_json::json;

/// Waits until `path` exists (the pid file is written just after the socket listens).
fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + PATIENCE;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The arguments of a process, from `/proc/<pid>/cmdline` (none if it is gone).
fn cmdline(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8(a.to_vec()).unwrap())
        .collect()
}

/// qemu-server's `vm_running_locally`, for a pid file path: the pid if the file holds
/// only a decimal pid (newline allowed), the process is a kvm/qemu-system-* whose
/// `-pidfile`/`--pidfile` value is this very path, and it exists and is no zombie.
fn vm_running_locally(pidfile: &str) -> Option<u32> {
    let text = std::fs::read_to_string(pidfile).ok()?;
    let line = text.split_inclusive('\n').next()?;
    let digits = line.strip_suffix('\n').unwrap_or(line);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pid: u32 = digits.parse().ok()?;
    let args = cmdline(pid);
    let cmd = args.first()?;
    let qemu_name = cmd
        .rsplit('/')
        .next()
        .is_some_and(|base| base.len() > "qemu-system-".len() && base.starts_with("qemu-system-"));
    if !cmd.ends_with("kvm") && !qemu_name {
        return None;
    }
    // parse_cmdline: `-x`/`--x` starts an option, the next argument not starting with
    // '-' is its value; the last one wins.
    let mut pidfile_value = None;
    let mut pending: Option<&str> = None;
    for p in &args {
        if let Some(name) = p.strip_prefix("--").or_else(|| p.strip_prefix('-')) {
            if pending == Some("pidfile") {
                pidfile_value = None;
            }
            pending = Some(name);
        } else if let Some(name) = pending.take() {
            if name == "pidfile" {
                pidfile_value = Some(p.as_str());
            }
        }
    }
    if pidfile_value != Some(pidfile) {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit_once(") ")?.1.chars().next()?;
    (state != 'Z').then_some(pid)
}

fn start_with_pidfile(inline: bool) -> (Sim, String) {
    let dir = TempDir::new("pid");
    let pidfile = dir.join("100.pid").to_str().unwrap().to_string();
    let inline_arg = format!("--pidfile={pidfile}");
    let args: Vec<&str> = if inline {
        vec![inline_arg.as_str()]
    } else {
        vec!["--pidfile", pidfile.as_str()]
    };
    let sim = Sim::start_in(dir, &args);
    wait_for_file(Path::new(&pidfile));
    (sim, pidfile)
}

#[test]
fn pidfile_and_command_line_pass_qemu_servers_check() {
    for inline in [false, true] {
        let (sim, pidfile) = start_with_pidfile(inline);
        let pid = sim.child.id();
        assert_eq!(
            std::fs::read_to_string(&pidfile).unwrap(),
            format!("{pid}\n")
        );
        let args = cmdline(pid);
        assert_eq!(args[0], "qemu-system-pve-sim", "{args:?}");
        assert!(
            args.windows(2)
                .any(|w| w[0] == "--pidfile" && w[1] == pidfile),
            "{args:?}"
        );
        assert!(
            !args.iter().any(|a| a.starts_with("--pidfile=")),
            "{args:?}"
        );
        // The other arguments are passed on as given.
        assert_eq!(args[1], "--socket");
        assert_eq!(Path::new(&args[2]), sim.socket);
        assert_eq!(vm_running_locally(&pidfile), Some(pid));
        // No temporary file is left beside it.
        let mut names: Vec<String> = std::fs::read_dir(sim.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["100.pid", "sim.qmp"]);
        // And it serves as usual.
        assert_eq!(sim.client().ok("query-status", json!({}))["running"], true);
    }
}

#[test]
fn without_pidfile_the_program_name_stays() {
    let sim = Sim::start(&[]);
    let args = cmdline(sim.child.id());
    assert_eq!(Path::new(&args[0]), Path::new(binary()), "{args:?}");
}

#[test]
fn pidfile_is_removed_after_sigterm_and_after_quit() {
    let (mut sim, pidfile) = start_with_pidfile(false);
    let _c = sim.client();
    sim.sigterm();
    assert_eq!(sim.wait().code(), Some(0));
    assert!(!Path::new(&pidfile).exists());
    assert!(!sim.socket.exists());

    let (mut sim, pidfile) = start_with_pidfile(true);
    let mut c = sim.client();
    c.ok("quit", json!({}));
    assert_eq!(sim.wait().code(), Some(0));
    assert!(!Path::new(&pidfile).exists());
    assert!(!sim.socket.exists());
}

#[test]
fn pidfile_stays_after_sigkill() {
    let (mut sim, pidfile) = start_with_pidfile(false);
    let pid = sim.child.id();
    sim.child.kill().unwrap();
    assert_eq!(sim.wait().signal(), Some(libc::SIGKILL));
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap(),
        format!("{pid}\n")
    );
    // Stale: the process is gone, so the check fails.
    assert_eq!(vm_running_locally(&pidfile), None);
}

/// PR_SET_PDEATHSIG is set after the re-exec: the simulator still dies with its parent.
#[test]
fn the_reexecuted_simulator_dies_with_its_parent() {
    let dir = TempDir::new("pdeath");
    let pidfile = dir.join("7.pid");
    let socket = dir.join("7.qmp");
    // The shell starts the simulator, waits for its pid file, prints its pid and exits.
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" --socket "$1" --pidfile "$2" >/dev/null & while [ ! -e "$2" ]; do sleep 0.01; done; echo $!"#)
        .arg(binary())
        .arg(&socket)
        .arg(&pidfile)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success());
    let pid: u32 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    // Gone, or a zombie that nobody reaps (in a container without init).
    while vm_running_locally(pidfile.to_str().unwrap()).is_some() {
        assert!(
            Instant::now() < deadline,
            "simulator {pid} outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Killed by SIGKILL, so the pid file stays behind.
    assert!(pidfile.exists());
}
