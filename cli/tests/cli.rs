//! The `vzdump-qemu` tool against the simulator and real QEMU: exit codes and outputs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vzdump-qemu"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

/// A peer process (simulator or QEMU) on a socket in a fresh directory; killed on drop.
struct Peer {
    child: Child,
    dir: PathBuf,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `program` and waits until all of `files` (its socket, its pid file) exist.
fn start(tag: &str, program: &Path, args: &[String], files: &[&Path]) -> Child {
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{tag}: cannot start {}: {e}", program.display()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !files.iter().all(|f| f.exists()) {
        assert!(Instant::now() < deadline, "{tag}: socket did not appear");
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

fn workdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vzq-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sim() -> Peer {
    let dir = workdir("sim");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug/pve-qmp-sim");
    let socket = dir.join("100.qmp");
    // VM 100 of `dir`: its pid file passes qemu-server's running check.
    let pidfile = dir.join("100.pid");
    let args = vec![
        "--socket".into(),
        socket.display().to_string(),
        "--pidfile".into(),
        pidfile.display().to_string(),
        "--gen-disk".into(),
        "drive-scsi0=8M".into(),
    ];
    Peer {
        child: start("sim", &bin, &args, &[&socket, &pidfile]),
        dir,
    }
}

#[test]
fn usage_errors_exit_2() {
    let o = tool(&["--vmid", "1", "frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unknown command 'frobnicate'"));
    let o = tool(&["status"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("give exactly one of --vmid and --socket"));
}

#[test]
fn status_backup_and_verify_against_the_simulator() {
    let s = sim();
    let dir = s.dir.display().to_string();
    let o = tool(&["--vmid", "100", "--run-dir", &dir, "status"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "{\n  \"finishing\": false\n}");

    let archive = s.dir.join("a.vma.lzo");
    let archive = archive.display().to_string();
    let o = tool(&[
        "--vmid",
        "100",
        "--run-dir",
        &dir,
        "backup",
        "--output",
        &archive,
        "--compress",
        "lzop",
        "--style",
        "current",
    ]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let log = text(&o.stdout);
    assert!(log.contains("INFO: started backup task '"), "{log}");
    assert!(log.contains("INFO: transferred 8.00 MiB in "), "{log}");

    let o = tool(&["verify", &archive]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with("archive OK: uuid "));

    // A damaged archive is refused with the reason.
    let raw = s.dir.join("bad.vma");
    std::fs::write(&raw, b"VMA\0garbage").unwrap();
    let o = tool(&["verify", &raw.display().to_string()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("is not a valid VMA stream"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn raw_qmp_against_real_qemu() {
    let dir = workdir("qemu");
    let socket = dir.join("q.sock");
    let args = [
        "-machine",
        "none",
        "-nodefaults",
        "-display",
        "none",
        "-S",
        "-qmp",
        &format!("unix:{},server=on,wait=off", socket.display()),
    ]
    .map(String::from);
    let qemu = Peer {
        child: start("qemu", Path::new("qemu-system-x86_64"), &args, &[&socket]),
        dir,
    };
    let sock = socket.display().to_string();
    let o = tool(&["--socket", &sock, "qmp", "query-status"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("\"prelaunch\""));
    let o = tool(&["--socket", &sock, "qmp", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("command 'nope' failed - The command nope has not been found"));
    let o = tool(&["--socket", &sock, "status"]);
    assert_eq!(o.status.code(), Some(1));
    // proxmox/qemu-server src/PVE/QMPClient.pm `cmd` around `mux_input`'s desc.
    assert!(
        text(&o.stderr).ends_with(
            "command 'query-backup' failed - The command query-backup has not been found\n"
        ),
        "{}",
        text(&o.stderr)
    );
    drop(qemu);
}
