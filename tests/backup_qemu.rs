//! Proxmox backup commands against real (stock) QEMU: no Proxmox backup support.

mod support;

use std::os::fd::AsFd;

use support::Qemu;
use vzdump_qemu::backup::{self, PbsParams, Secret, VmaParams};
use vzdump_qemu::qmp::{ErrorClass, Options, Peer};
use vzdump_qemu::Error;

#[test]
fn starting_a_backup_on_stock_qemu_says_no_proxmox_support() {
    let q = Qemu::start();
    let peer = Peer::path(&q.socket);
    let (_r, w) = nix::unistd::pipe().unwrap();
    let err = backup::start_vma(
        &peer,
        &Options::default(),
        w.as_fd(),
        &VmaParams::default(),
        None,
    )
    .unwrap_err();
    assert!(matches!(err, Error::NoProxmoxSupport { .. }), "{err}");
    assert_eq!(err.class(), Some(&ErrorClass::CommandNotFound));
    assert_eq!(
        err.to_string(),
        format!(
            "qmp socket '{}' has no Proxmox backup support - command 'backup' not found (The command backup has not been found)",
            q.socket.display()
        )
    );

    let pbs = PbsParams {
        repository: "root@pam@localhost:store".into(),
        backup_id: "100".into(),
        backup_time: 1,
        password: Some(Secret::new("s3cret-pw")),
        ..PbsParams::default()
    };
    let err = backup::start_pbs(&peer, &Options::default(), &pbs, None).unwrap_err();
    assert_eq!(err.class(), Some(&ErrorClass::CommandNotFound));
    assert!(!format!("{err} {err:?}").contains("s3cret-pw"));

    for err in [
        backup::query(&peer, &Options::default()).unwrap_err(),
        backup::cancel(&peer, &Options::default()).unwrap_err(),
        backup::proxmox_support(&peer, &Options::default()).unwrap_err(),
    ] {
        assert!(matches!(err, Error::NoProxmoxSupport { .. }), "{err}");
    }
}
