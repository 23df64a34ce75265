//! The `vzdump-qemu` tool against the simulator and real QEMU: exit codes and outputs.

use std::process::{Command, Output};

use testkit::{Qemu, Sim};

fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vzdump-qemu"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

/// Asserts that the tool exited with `code` and said `needle` on stderr.
fn fails_with(o: &Output, code: i32, needle: &str) {
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(needle), "'{needle}' not in: {stderr}");
}

/// The simulator as VM 100 of its directory, with an 8 MiB generated disk.
fn sim() -> Sim {
    Sim::start_vmid(100, &["--gen-disk", "drive-scsi0=8M"])
}

#[test]
fn usage_errors_exit_2() {
    fails_with(
        &tool(&["--vmid", "1", "frobnicate"]),
        2,
        "unknown command 'frobnicate'",
    );
    fails_with(
        &tool(&["status"]),
        2,
        "give exactly one of --vmid and --socket",
    );
}

#[test]
fn help_per_command_and_version() {
    let o = tool(&["--version"]);
    assert!(o.status.success());
    assert_eq!(
        text(&o.stdout),
        format!("vzdump-qemu {}\n", env!("CARGO_PKG_VERSION"))
    );
    for (command, option) in [
        ("status", "--help"),
        ("cancel", "--help"),
        ("qmp", "<COMMAND>"),
        ("backup", "--start-cmd"),
        ("probe", "--interval-ms"),
        ("verify", "--compare"),
    ] {
        let o = tool(&[command, "--help"]);
        assert!(o.status.success(), "{command}: {}", text(&o.stderr));
        let help = text(&o.stdout);
        assert!(
            help.contains(&format!("Usage: vzdump-qemu {command}")),
            "{help}"
        );
        assert!(
            help.contains(option),
            "{command}: {option} missing from {help}"
        );
    }
    let o = tool(&["--help"]);
    assert!(text(&o.stdout).contains("--run-dir <DIR>"));
    // A usage error shows the message, then the help.
    fails_with(
        &tool(&["--vmid", "x", "status"]),
        2,
        "--vmid: invalid value 'x'\n",
    );
    fails_with(
        &tool(&["--socket", "s", "status", "x"]),
        2,
        "unknown argument 'x'",
    );
    fails_with(&tool(&["verify"]), 2, "verify needs an ARCHIVE");
}

#[test]
fn status_backup_and_verify_against_the_simulator() {
    let s = sim();
    let dir = s.dir.path().display().to_string();
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
    fails_with(&o, 1, "is not a valid VMA stream");
}

#[test]
fn backup_to_pbs_and_a_socket_peer_refused() {
    let s = sim();
    let dir = s.dir.path().display().to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_vzdump-qemu"))
        .args([
            "--vmid",
            "100",
            "--run-dir",
            &dir,
            "backup",
            "--pbs",
            "root@pam@pbs:store",
        ])
        .env("PBS_PASSWORD", "cli-secret")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let log = text(&o.stdout);
    // The job's flow: proxmox/qemu-server src/PVE/VZDump/QemuServer.pm, archive_pbs.
    assert!(log.contains("INFO: started backup task '"), "{log}");
    assert!(log.contains("INFO: resuming VM again\n"), "{log}");
    assert!(!log.contains("cli-secret"), "{log}");

    let socket = s.dir.join("100.qmp").display().to_string();
    let o = tool(&[
        "--socket",
        &socket,
        "backup",
        "--output",
        "/nonexistent/x.vma",
    ]);
    fails_with(&o, 2, "backup needs --vmid");
}

#[test]
fn raw_qmp_against_real_qemu() {
    let qemu = Qemu::start();
    let socket = &qemu.socket;
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
