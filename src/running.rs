//! Whether a VM's QEMU runs on this host, decided as qemu-server decides it.
//!
//! qemu-server's `vm_running_locally` (proxmox/qemu-server `src/PVE/QemuServer/Helpers.pm`)
//! reads `<run_dir>/<vmid>.pid`; its first line must be a decimal pid. That process must be
//! a QEMU (`/proc/<pid>/cmdline` starts with a program ending in `kvm` or named
//! `qemu-system-*`) started with `-pidfile` naming this very pid file, and it must not be a
//! zombie (`/proc/<pid>/stat`, as pve-common's `check_process_running`). A pid file left
//! behind by a killed QEMU, or naming a pid that was reused by another program, does not
//! count. Every one-shot command to a VM checks this first (`VM <vmid> not running`).

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `<run_dir>/<vmid>.pid`, where qemu-server's QEMU writes its pid.
pub fn pid_file(run_dir: &Path, vmid: u32) -> PathBuf {
    run_dir.join(format!("{vmid}.pid"))
}

/// The pid of VM `vmid`'s QEMU if it runs, as qemu-server's `vm_running_locally` decides.
pub fn vm_running_locally(run_dir: &Path, vmid: u32) -> Option<u32> {
    let pidfile = pid_file(run_dir, vmid);
    let content = std::fs::read(&pidfile).ok()?;
    let pid = pid_of_line(first_line(&content))?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if !cmdline_names_pidfile(&cmdline, pidfile.as_os_str().as_bytes()) {
        return None;
    }
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    if !alive(first_line(&stat), pid) {
        return None;
    }
    pid.parse().ok()
}

/// What Perl's `<$fh>` reads first: up to and including the first newline.
fn first_line(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(at) => &bytes[..=at],
        None => bytes,
    }
}

/// The pid text of a pid file line (`m/^(\d+)$/`: digits, one trailing newline allowed),
/// kept as text: qemu-server builds `/proc/<text>` from it as it is.
fn pid_of_line(line: &[u8]) -> Option<&str> {
    let digits = line.strip_suffix(b"\n").unwrap_or(line);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()
}

/// Perl's `m/...$/`: the end, or just before a final newline.
fn chomped(s: &[u8]) -> &[u8] {
    s.strip_suffix(b"\n").unwrap_or(s)
}

/// qemu-server's `parse_cmdline` followed by its check: the program is a QEMU and the
/// `pidfile` option's value is `pidfile` exactly.
fn cmdline_names_pidfile(cmdline: &[u8], pidfile: &[u8]) -> bool {
    let line = first_line(cmdline);
    // Perl's `return if !$line` and `split(/\0/, ...)`, which drops trailing empty fields.
    if line.is_empty() || line == b"0" {
        return false;
    }
    let mut params: Vec<&[u8]> = line.split(|&b| b == 0).collect();
    while params.last().is_some_and(|p| p.is_empty()) {
        params.pop();
    }
    let Some(&program) = params.first() else {
        return false;
    };
    if !is_qemu_program(program) {
        return false;
    }
    let mut value_of_pidfile = None;
    let mut pending: Option<&[u8]> = None;
    for &param in &params {
        // `next if !$p`: empty and "0" are skipped.
        if param.is_empty() || param == b"0" {
            continue;
        }
        if let Some(key) = option_key(param) {
            if pending == Some(b"pidfile") {
                value_of_pidfile = None; // `-pidfile` without a value
            }
            pending = Some(key);
        } else if let Some(key) = pending.take() {
            if key == b"pidfile" {
                value_of_pidfile = Some(param);
            }
        }
    }
    value_of_pidfile == Some(pidfile)
}

/// `m|kvm$|` or `m@(?:^|/)qemu-system-[^/]+$@`.
fn is_qemu_program(program: &[u8]) -> bool {
    let program = chomped(program);
    if program.ends_with(b"kvm") {
        return true;
    }
    let base = match program.iter().rposition(|&b| b == b'/') {
        Some(at) => &program[at + 1..],
        None => program,
    };
    base.len() > b"qemu-system-".len() && base.starts_with(b"qemu-system-")
}

/// The key of an option argument (`m/^--?(.*)$/`), else `None`.
fn option_key(param: &[u8]) -> Option<&[u8]> {
    let rest = param.strip_prefix(b"-")?;
    let rest = rest.strip_prefix(b"-").unwrap_or(rest);
    // `.` does not match a newline; `$` may stand before a final one.
    let key = chomped(rest);
    (!key.contains(&b'\n')).then_some(key)
}

/// pve-common's `check_process_running`: `/proc/<pid>/stat` names the pid and a state
/// other than zombie.
fn alive(stat: &[u8], pid: &str) -> bool {
    let Some(rest) = stat.strip_prefix(pid.as_bytes()) else {
        return false;
    };
    if !rest.starts_with(b" (") {
        return false;
    }
    // The command name may contain ") ": the state follows the last one.
    let Some(close) = rest.windows(2).rposition(|w| w == b") ") else {
        return false;
    };
    match rest.get(close + 2) {
        Some(b'Z') | None => false,
        Some(state) => !state.is_ascii_whitespace(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIDFILE: &[u8] = b"/var/run/qemu-server/100.pid";

    fn cmdline(args: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        for a in args {
            v.extend_from_slice(a.as_bytes());
            v.push(0);
        }
        v
    }

    #[test]
    fn pid_file_lines() {
        assert_eq!(pid_of_line(b"1234\n"), Some("1234"));
        assert_eq!(pid_of_line(b"1234"), Some("1234"));
        for bad in [
            &b""[..],
            b"\n",
            b" 1234\n",
            b"12 34",
            b"1234\n\n",
            b"-5",
            b"0x10",
        ] {
            assert_eq!(pid_of_line(bad), None, "{bad:?}");
        }
        assert_eq!(first_line(b"77\nrest"), b"77\n");
    }

    #[test]
    fn qemu_command_lines() {
        let pidfile = "/var/run/qemu-server/100.pid";
        for program in [
            "/usr/bin/kvm",
            "kvm",
            "/usr/bin/qemu-system-x86_64",
            "qemu-system-pve-sim",
        ] {
            let line = cmdline(&[program, "-id", "100", "-pidfile", pidfile, "-daemonize"]);
            assert!(cmdline_names_pidfile(&line, PIDFILE), "{program}");
        }
        let double_dash = cmdline(&["qemu-system-x86_64", "--pidfile", pidfile]);
        assert!(cmdline_names_pidfile(&double_dash, PIDFILE));
        for (what, line) in [
            (
                "another program",
                cmdline(&["/usr/bin/perl", "-pidfile", pidfile]),
            ),
            (
                "qemu-system- alone",
                cmdline(&["qemu-system-", "-pidfile", pidfile]),
            ),
            (
                "other pid file",
                cmdline(&["kvm", "-pidfile", "/var/run/qemu-server/101.pid"]),
            ),
            (
                "joined value",
                cmdline(&["kvm", "-pidfile=/var/run/qemu-server/100.pid"]),
            ),
            ("no value", cmdline(&["kvm", "-pidfile", "-daemonize"])),
            ("no pidfile", cmdline(&["kvm", "-id", "100"])),
            ("empty", Vec::new()),
        ] {
            assert!(!cmdline_names_pidfile(&line, PIDFILE), "{what}");
        }
        // The last -pidfile wins, as a Perl hash keeps the last value.
        let twice = cmdline(&["kvm", "-pidfile", pidfile, "-pidfile", "/other"]);
        assert!(!cmdline_names_pidfile(&twice, PIDFILE));
    }

    #[test]
    fn zombies_are_not_running() {
        assert!(alive(b"42 (qemu-system-x86) S 1 42 42 0 -1", "42"));
        assert!(alive(b"42 (a) b) R 1", "42"));
        assert!(!alive(b"42 (qemu-system-x86) Z 1 42 42", "42"));
        assert!(!alive(b"43 (qemu) S 1", "42"));
        assert!(!alive(b"", "42"));
    }

    #[test]
    fn this_process_is_not_a_vm() {
        let dir = std::env::temp_dir().join(format!("vzq-running-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(vm_running_locally(&dir, 7), None, "no pid file");
        std::fs::write(pid_file(&dir, 7), format!("{}\n", std::process::id())).unwrap();
        assert_eq!(
            vm_running_locally(&dir, 7),
            None,
            "a test binary is no QEMU"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
