//! Proxmox backup commands against real (stock) QEMU, which lacks them: qemu-server's texts.

mod common;

use std::os::fd::AsFd;

use testkit::Qemu;
use vzdump_qemu::backup::{self, VmaParams};
use vzdump_qemu::qmp::{ErrorClass, Options, Peer};
use vzdump_qemu::{Error, Style};

use common::pbs_job;

/// Stock QEMU as VM 100 (paused), its peer, and the error of a VMA start with `params` into a
/// pipe.
fn vma_start_on_stock_qemu(params: &VmaParams) -> (Qemu, Peer, Error) {
    let q = Qemu::start_vm(100, &["-S"]);
    let peer = Peer::vmid_in(100, q.dir.path());
    let (_r, w) = nix::unistd::pipe().unwrap();
    let err = backup::start_vma(&peer, &Options::default(), w.as_fd(), params, None).unwrap_err();
    (q, peer, err)
}

#[test]
fn starting_a_backup_on_stock_qemu_says_what_qemu_server_says() {
    let (_q, peer, err) = vma_start_on_stock_qemu(&VmaParams::default());
    assert!(err.is_no_proxmox_support(), "{err}");
    assert_eq!(err.class(), Some(&ErrorClass::CommandNotFound));
    // The seed's `archive_vma` dies with what `PVE::QMPClient::queue_execute(30)` died
    // with: QEMU's bare desc (proxmox/qemu-server src/PVE/QMPClient.pm `mux_input`).
    assert_eq!(err.to_string(), "The command backup has not been found");

    let pbs = pbs_job("root@pam@localhost:store", "100", 1, Some("s3cret-pw"));
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
    let params = VmaParams {
        devlist: Some("drive-scsi0;drive-scsi0".into()),
        ..VmaParams::default()
    };
    let (_q, _peer, err) = vma_start_on_stock_qemu(&params);
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert!(
        err.to_string().contains("names device 'drive-scsi0' twice"),
        "{err}"
    );
}
