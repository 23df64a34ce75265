//! `extract_to_dir`: configs as files, sparse disk images, vmstate, name safety.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::*;
use vma::{extract_to_dir, VmaError};

#[test]
fn extracts_configs_and_exact_sparse_images() {
    let a = image(
        64 * CLUSTER + 123,
        &[(CLUSTER, 2 * BLOCK), (64 * CLUSTER, 123)],
    );
    let b = image(3 * CLUSTER, &[(0, 3 * CLUSTER)]);
    let conf = b"scsi0: local:100/vm-100-disk-0.raw\n".to_vec();
    let stream = build(
        vec![("qemu-server.conf".into(), conf.clone())],
        &[("drive-scsi0", &a), ("drive-scsi1", &b)],
        None,
    );
    let tmp = testkit::TempDir::new("vma-extract");
    let dir = tmp.path().join("out");
    let info = extract_to_dir(stream.as_slice(), &dir).unwrap();
    assert_eq!(info.header.devices.len(), 2);

    assert_eq!(fs::read(dir.join("qemu-server.conf")).unwrap(), conf);
    let got_a = fs::read(dir.join("disk-drive-scsi0.raw")).unwrap();
    assert_eq!(got_a.len(), a.len());
    assert!(got_a == a, "disk-drive-scsi0.raw differs");
    assert!(fs::read(dir.join("disk-drive-scsi1.raw")).unwrap() == b);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "disk-drive-scsi0.raw",
            "disk-drive-scsi1.raw",
            "qemu-server.conf"
        ]
    );
    // 3 data blocks in a 4 MiB image: the holes were not written.
    let allocated = fs::metadata(dir.join("disk-drive-scsi0.raw"))
        .unwrap()
        .blocks()
        * 512;
    assert!(allocated < 1 << 20, "allocated {allocated} bytes");
}

#[test]
fn existing_target_directory_is_refused() {
    let img = image(CLUSTER, &[(0, 1)]);
    let stream = build(vec![], &[("d", &img)], None);
    let tmp = testkit::TempDir::new("vma-extract");
    assert_err!(
        extract_to_dir(stream.as_slice(), tmp.path()).unwrap_err(),
        VmaError::Extract { .. }
    );
}

#[test]
fn unsafe_names_are_refused_before_writing() {
    let img = image(CLUSTER, &[(0, 1)]);
    let mut stream = build(
        vec![("cfgfile".into(), vec![1])],
        &[("drive-x", &img)],
        None,
    );
    patch_header_blob(&mut stream, b"cfgfile\0", b"../evil\0");
    let tmp = testkit::TempDir::new("vma-extract");
    let dir = tmp.path().join("out");
    assert_err!(
        extract_to_dir(stream.as_slice(), &dir).unwrap_err(),
        VmaError::InvalidName { .. }
    );
    assert!(!dir.exists());
    assert!(!tmp.path().join("evil").exists());
}

#[test]
fn failed_verification_leaves_no_final_disk_image() {
    let img = image(100 * CLUSTER, &[(0, 100 * CLUSTER)]);
    let stream = build(vec![], &[("d", &img)], None);
    let cut = extent_offsets(&stream)[1];
    let tmp = testkit::TempDir::new("vma-extract");
    let dir = tmp.path().join("out");
    assert_err!(
        extract_to_dir(&stream[..cut], &dir).unwrap_err(),
        VmaError::MissingCluster { cluster: 58, .. }
    );
    assert!(!dir.join("disk-d.raw").exists());
    assert!(dir.join("tmp-disk-d.raw").exists());
}

/// A stream whose second device is named `vmstate` (QEMU's RAM state), made by writing a
/// device `vmstatX` and renaming it in the header.
fn with_vmstate(order: &[u32]) -> (Vec<u8>, Vec<u8>) {
    let disk = image(CLUSTER, &[(0, 10)]);
    let ram = image(3 * CLUSTER, &[(0, 3 * CLUSTER)]);
    let mut writer = writer(&[("d", disk.len() as u64), ("vmstatX", ram.len() as u64)]);
    writer.write_cluster(1, 0, &disk).unwrap();
    for &c in order {
        writer
            .write_cluster(2, c, &padded_cluster(&ram, c))
            .unwrap();
    }
    let mut stream = writer.finish().unwrap();
    patch_header_blob(&mut stream, b"vmstatX\0", b"vmstate\0");
    (stream, ram)
}

#[test]
fn vmstate_goes_to_vmstate_bin_and_must_be_sequential() {
    let (stream, ram) = with_vmstate(&[0, 1, 2]);
    let tmp = testkit::TempDir::new("vma-extract");
    let dir = tmp.path().join("out");
    let info = extract_to_dir(stream.as_slice(), &dir).unwrap();
    assert!(info.header.devices[1].is_vmstate());
    assert_eq!(info.devices[1].clusters, 3);
    assert!(fs::read(dir.join("vmstate.bin")).unwrap() == ram);
    assert!(dir.join("disk-d.raw").exists());

    let (stream, _) = with_vmstate(&[1, 0, 2]);
    assert_err!(
        vma::verify(stream.as_slice()).unwrap_err(),
        VmaError::VmstateOutOfOrder {
            cluster: 1,
            expected: 0,
            ..
        }
    );
}
