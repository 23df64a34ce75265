//! Proxmox backup commands against real (stock) QEMU, which lacks them: qemu-server's texts.

use std::os::fd::AsFd;

use testkit::Qemu;
use vzdump_qemu::backup::{self, PbsParams, Secret, VmaParams};
use vzdump_qemu::qmp::{ErrorClass, Options, Peer};
use vzdump_qemu::Style;

#[test]
fn starting_a_backup_on_stock_qemu_says_what_qemu_server_says() {
    let q = Qemu::start_vm(100, &["-S"]);
    let peer = Peer::vmid_in(100, q.dir.path());
    let (_r, w) = nix::unistd::pipe().unwrap();
    let err = backup::start_vma(
        &peer,
        &Options::default(),
        w.as_fd(),
        &VmaParams::default(),
        None,
    )
    .unwrap_err();
    assert!(err.is_no_proxmox_support(), "{err}");
    assert_eq!(err.class(), Some(&ErrorClass::CommandNotFound));
    // The seed's `archive_vma` dies with what `PVE::QMPClient::queue_execute(30)` died
    // with: QEMU's bare desc (proxmox/qemu-server src/PVE/QMPClient.pm `mux_input`).
    assert_eq!(err.to_string(), "The command backup has not been found");

    let pbs = PbsParams {
        repository: "root@pam@localhost:store".into(),
        backup_id: "100".into(),
        backup_time: 1,
        password: Some(Secret::new("s3cret-pw")),
        ..PbsParams::default()
    };
    let err = backup::start_pbs(&peer, &Options::default(), &pbs, None).unwrap_err();
    assert!(err.is_no_proxmox_support(), "{err}");
    // `archive_pbs` runs `mon_cmd($vmid, "backup", ...)`: proxmox/qemu-server
    // src/PVE/QMPClient.pm `cmd` dies with "VM <vmid> qmp command '<cmd>' failed - <desc>".
    assert_eq!(
        err.to_string(),
        "VM 100 qmp command 'backup' failed - The command backup has not been found"
    );
    assert!(!format!("{err} {err:?}").contains("s3cret-pw"));

    for style in [Style::Seed, Style::Current] {
        let options = Options {
            style,
            ..Options::default()
        };
        for (command, err) in [
            (
                "query-backup",
                vzdump_qemu::progress::query(&peer, &options).unwrap_err(),
            ),
            (
                "backup-cancel",
                backup::cancel(&peer, &options).unwrap_err(),
            ),
            (
                "query-proxmox-support",
                backup::proxmox_support(&peer, &options).unwrap_err(),
            ),
        ] {
            assert!(err.is_no_proxmox_support(), "{err}");
            // proxmox/qemu-server src/PVE/QMPClient.pm `cmd` (seed and today alike).
            assert_eq!(
                err.to_string(),
                format!("VM 100 qmp command '{command}' failed - The command {command} has not been found")
            );
        }
    }
}

#[test]
fn a_repeated_device_is_refused_before_anything_is_sent() {
    let q = Qemu::start_vm(100, &["-S"]);
    let peer = Peer::vmid_in(100, q.dir.path());
    let (_r, w) = nix::unistd::pipe().unwrap();
    let params = VmaParams {
        devlist: Some("drive-scsi0;drive-scsi0".into()),
        ..VmaParams::default()
    };
    let err = backup::start_vma(&peer, &Options::default(), w.as_fd(), &params, None).unwrap_err();
    assert!(
        matches!(err, vzdump_qemu::Error::InvalidArgument(_)),
        "{err}"
    );
    assert!(
        err.to_string().contains("names device 'drive-scsi0' twice"),
        "{err}"
    );
}
