//! qemu-server's failure texts, produced by real QEMU 10 (a direct child with `-pidfile`,
//! as qemu-server starts a VM) in the situations that make them: no pid file, a stale
//! one, a removed socket, a refused connect, QEMU killed mid-command, no answer.

use std::os::unix::net::UnixListener;
use std::time::Duration;

use testkit::Qemu;
use vzdump_qemu::error::{Cause, Stage};
use vzdump_qemu::qmp::{self, Options, Peer};
use vzdump_qemu::{backup, Error, Style};

const VMID: u32 = 100;

fn vm_peer(q: &Qemu) -> Peer {
    Peer::vmid_in(VMID, q.dir.path())
}

fn query_status(peer: &Peer, options: &Options) -> Error {
    qmp::command(peer, "query-status", None, None, options).unwrap_err()
}

#[test]
fn a_running_vm_answers() {
    let q = Qemu::start_vm(VMID, &["-S"]);
    let status = qmp::command(
        &vm_peer(&q),
        "query-status",
        None,
        None,
        &Options::default(),
    );
    assert_eq!(status.unwrap()["status"], "prelaunch");
    let pid = vzdump_qemu::running::vm_running_locally(q.dir.path(), VMID);
    assert_eq!(pid, Some(q.pid() as u32));
}

#[test]
fn no_pid_file_stale_pid_file_and_zombie_are_not_running() {
    let mut q = Qemu::start_vm(VMID, &["-S"]);
    let peer = vm_peer(&q);
    let not_running = |err: Error| {
        assert!(matches!(err, Error::NotRunning { vmid: VMID }), "{err}");
        // proxmox/qemu-server src/PVE/QemuServer/Monitor.pm `qmp_cmd`:
        // die "$peer->{name} not running\n" if !vm_running_locally(...)
        assert_eq!(err.to_string(), "VM 100 not running");
    };
    // A zombie: killed, not reaped yet (pve-common's check_process_running says no).
    q.signal(libc::SIGKILL);
    let zombie_seen = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(5));
        std::fs::read_to_string(format!("/proc/{}/stat", q.pid())).is_ok_and(|s| s.contains(") Z "))
    });
    assert!(zombie_seen, "QEMU did not become a zombie");
    not_running(query_status(&peer, &Options::default()));
    // Reaped: the pid file and the socket stay, the process is gone.
    q.kill_and_reap();
    assert!(q.dir.path().join("100.pid").exists() && q.socket.exists());
    not_running(query_status(&peer, &Options::default()));
    not_running(vzdump_qemu::progress::query(&peer, &Options::default()).unwrap_err());
    not_running(backup::cancel(&peer, &Options::default()).unwrap_err());
    // Another VM id in the same directory has no pid file at all.
    let err = query_status(&Peer::vmid_in(101, q.dir.path()), &Options::default());
    assert_eq!(err.to_string(), "VM 101 not running");
}

#[test]
fn a_pid_file_naming_another_program_is_not_running() {
    let q = Qemu::start_vm(VMID, &["-S"]);
    // Pid reuse: the pid file now names a live process that is not this VM's QEMU.
    std::fs::write(
        q.dir.path().join("100.pid"),
        format!("{}\n", std::process::id()),
    )
    .unwrap();
    let err = query_status(&vm_peer(&q), &Options::default());
    assert_eq!(err.to_string(), "VM 100 not running");
    // A QEMU whose -pidfile names another file does not count either.
    let other = Qemu::start_vm(VMID, &["-S"]);
    std::fs::write(q.dir.path().join("100.pid"), format!("{}\n", other.pid())).unwrap();
    let err = query_status(&vm_peer(&q), &Options::default());
    assert_eq!(err.to_string(), "VM 100 not running");
}

#[test]
fn a_removed_socket_is_unable_to_open_monitor_socket() {
    let q = Qemu::start_vm(VMID, &["-S"]);
    std::fs::remove_file(&q.socket).unwrap();
    for style in [Style::Seed, Style::Current] {
        let options = Options {
            style,
            ..Options::default()
        };
        let err = query_status(&vm_peer(&q), &options);
        assert!(matches!(err, Error::NoSocket { .. }), "{err}");
        // proxmox/qemu-server src/PVE/QemuServer/Monitor.pm `qmp_cmd`:
        // die "unable to open monitor socket\n" unless -e $sname
        assert_eq!(err.to_string(), "unable to open monitor socket");
    }
}

#[test]
fn a_refused_connect_names_the_socket_and_errno() {
    let q = Qemu::start_vm(VMID, &["-S"]);
    // The VM's QEMU runs, but its socket path holds a socket nobody listens on.
    std::fs::remove_file(&q.socket).unwrap();
    drop(UnixListener::bind(&q.socket).unwrap());
    let err = vzdump_qemu::progress::query(&vm_peer(&q), &Options::default()).unwrap_err();
    let failure = err.command_error().unwrap();
    assert_eq!(
        failure.cause,
        Cause::Connect {
            errno: libc::ECONNREFUSED
        }
    );
    assert_eq!(failure.stage, Stage::Connect);
    // proxmox/qemu-server src/PVE/QMPClient.pm `cmd` around `$open_connection`:
    // "unable to connect to $peer_name $sotype socket - $!"
    assert_eq!(
        err.to_string(),
        "VM 100 qmp command 'query-backup' failed - unable to connect to VM 100 qmp socket - Connection refused"
    );
}

#[test]
fn killed_qemu_refuses_a_path_peer() {
    let mut q = Qemu::start();
    q.kill_and_reap();
    let peer = Peer::path(&q.socket);
    let err = vzdump_qemu::progress::query(&peer, &Options::default()).unwrap_err();
    let path = q.socket.display();
    // The same shapes as proxmox/qemu-server src/PVE/QMPClient.pm, with the path's name.
    assert_eq!(
        err.to_string(),
        format!("qmp socket '{path}' command 'query-backup' failed - unable to connect to qmp socket '{path}' - Connection refused")
    );
    std::fs::remove_file(&q.socket).unwrap();
    let err = vzdump_qemu::progress::query(&peer, &Options::default()).unwrap_err();
    assert_eq!(err.to_string(), "unable to open monitor socket");
}

#[test]
fn qemu_killed_mid_command_is_client_closed_connection() {
    let q = Qemu::start_vm(VMID, &["-S"]);
    // Stopped, QEMU still counts as running (state T), accepts the connect, never greets.
    q.signal(libc::SIGSTOP);
    let pid = q.pid();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: kill(2) of the test's own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    let err = vzdump_qemu::progress::query(&vm_peer(&q), &Options::default()).unwrap_err();
    killer.join().unwrap();
    let failure = err.command_error().unwrap();
    assert!(matches!(failure.cause, Cause::Closed { .. }), "{err:?}");
    assert_eq!(failure.stage, Stage::Handshake);
    // proxmox/qemu-server src/PVE/QMPClient.pm `mux_close`: "client closed connection",
    // reported for the command (`cmd`), as qemu-server's queue does for its handshake.
    assert_eq!(
        err.to_string(),
        "VM 100 qmp command 'query-backup' failed - client closed connection"
    );
}

#[test]
fn a_silent_qemu_is_got_timeout() {
    let q = Qemu::start_vm(VMID, &["-S"]);
    q.signal(libc::SIGSTOP);
    let options = Options {
        handshake_timeout: Duration::from_millis(300),
        ..Options::default()
    };
    let err = query_status(&vm_peer(&q), &options);
    q.signal(libc::SIGCONT);
    assert!(err.is_timeout(), "{err}");
    // proxmox/qemu-server src/PVE/QMPClient.pm `mux_timeout`: "got timeout".
    assert_eq!(
        err.to_string(),
        "VM 100 qmp command 'query-status' failed - got timeout"
    );
}

#[test]
fn command_not_found_is_qemus_desc() {
    let q = Qemu::start_vm(VMID, &["-S"]);
    let err = vzdump_qemu::progress::query(&vm_peer(&q), &Options::default()).unwrap_err();
    assert!(err.is_no_proxmox_support());
    // proxmox/qemu-server src/PVE/QMPClient.pm `mux_input`: die "$desc\n", wrapped by
    // `cmd` in "VM $vmid qmp command '$cmd' failed - ".
    assert_eq!(
        err.to_string(),
        "VM 100 qmp command 'query-backup' failed - The command query-backup has not been found"
    );
}
