//! The reader rejects corrupt and incomplete streams and says where.

mod common;

use std::io;

use common::*;
use vma::{read_archive, verify, Location, VmaError};

/// Two devices, 130 clusters in all: three extents (58, 58, 14 clusters).
fn sample() -> Vec<u8> {
    let a = image(
        100 * CLUSTER,
        &[(0, 10 * CLUSTER), (50 * CLUSTER + 3 * BLOCK, 2)],
    );
    let b = image(30 * CLUSTER - 5000, &[(5 * CLUSTER, CLUSTER)]);
    build(
        vec![("qemu-server.conf".into(), b"cores: 2\n".to_vec())],
        &[("drive-scsi0", &a), ("drive-scsi1", &b)],
        None,
    )
}

/// The offset of the sample's last extent, its last used slot and that slot's value.
fn last_slot(stream: &[u8]) -> (usize, usize, u64) {
    let at = extent_offsets(stream)[2];
    let last = (0..59)
        .map(|s| slot(stream, at, s))
        .rposition(|v| v != 0)
        .unwrap();
    (at, last, slot(stream, at, last))
}

fn check(stream: &[u8]) -> VmaError {
    verify(stream).unwrap_err()
}

#[test]
fn sample_is_valid() {
    let stream = sample();
    let info = verify(stream.as_slice()).unwrap();
    assert_eq!(info.extents, 3);
    assert_eq!(extent_offsets(&stream).len(), 3);
}

#[test]
fn flipped_header_byte_fails_the_md5() {
    let mut stream = sample();
    stream[5000] ^= 0x40;
    assert_err!(check(&stream), VmaError::HeaderChecksum);
    let mut stream = sample();
    // In the blob buffer.
    stream[12290] ^= 1;
    assert_err!(check(&stream), VmaError::HeaderChecksum);
}

#[test]
fn header_field_checks() {
    let mut stream = sample();
    stream[0] = b'X';
    assert_err!(check(&stream), VmaError::BadMagic);

    let mut stream = sample();
    stream[7] = 2;
    reseal_header(&mut stream);
    assert_err!(check(&stream), VmaError::BadVersion(2));

    let mut stream = sample();
    stream[56..60].copy_from_slice(&12288u32.to_be_bytes());
    assert_err!(check(&stream), VmaError::BadHeaderSize(12288));

    let mut stream = sample();
    // Blob buffer larger than the header.
    stream[52..56].copy_from_slice(&100_000u32.to_be_bytes());
    reseal_header(&mut stream);
    assert_err!(check(&stream), VmaError::BadBlobBuffer { .. });

    assert_err!(
        check(&sample()[..12300]),
        VmaError::ShortHeader { got: 12300, .. }
    );
}

#[test]
fn config_name_must_be_nul_terminated() {
    let mut stream = sample();
    patch_header_blob(&mut stream, b"qemu-server.conf\0", b"qemu-server.confX");
    let err = assert_err!(check(&stream), VmaError::InvalidDataPointers { index: 0 });
    assert!(err
        .to_string()
        .starts_with("vma contains invalid data pointers"));
}

#[test]
fn flipped_extent_header_byte_fails_the_md5() {
    let mut stream = sample();
    let at = extent_offsets(&stream)[1];
    stream[at + 100] ^= 1;
    let err = assert_err!(
        check(&stream),
        VmaError::ExtentChecksum { at: Location { extent: 1, offset } } if *offset == at as u64
    );
    assert!(err.to_string().contains("extent 1"), "{err}");
}

#[test]
fn extent_with_another_uuid_is_rejected() {
    let mut stream = sample();
    let at = extent_offsets(&stream)[2];
    stream[at + 8] ^= 0xff;
    reseal_extent(&mut stream, at);
    assert_err!(
        check(&stream),
        VmaError::ExtentUuid {
            at: Location { extent: 2, .. }
        }
    );
}

#[test]
fn extent_magic_and_reserved_field() {
    let mut stream = sample();
    let at = extent_offsets(&stream)[0];
    stream[at + 3] = b'X';
    reseal_extent(&mut stream, at);
    assert_err!(check(&stream), VmaError::ExtentMagic { .. });

    let mut stream = sample();
    stream[at + 5] = 1;
    reseal_extent(&mut stream, at);
    assert_err!(check(&stream), VmaError::ExtentMagic { .. });
}

#[test]
fn block_count_must_match_the_masks() {
    let mut stream = sample();
    let at = extent_offsets(&stream)[0];
    let count = u16::from_be_bytes([stream[at + 6], stream[at + 7]]);
    stream[at + 6..at + 8].copy_from_slice(&(count - 1).to_be_bytes());
    reseal_extent(&mut stream, at);
    assert_err!(check(&stream), VmaError::BlockCount { .. });
}

#[test]
fn truncated_stream() {
    let stream = sample();
    let offsets = extent_offsets(&stream);
    // Cut at an extent boundary: the clusters of the last extent are missing.
    let err = assert_err!(
        check(&stream[..offsets[2]]),
        VmaError::MissingCluster { device, cluster: 16 } if device == "drive-scsi1"
    );
    assert_eq!(
        err.to_string(),
        "detected missing cluster 16 for stream drive-scsi1"
    );
    // Cut inside an extent's data.
    assert_err!(
        check(&stream[..stream.len() - 1]),
        VmaError::ShortExtent {
            at: Location { extent: 2, .. },
            ..
        }
    );
    // Cut inside an extent header.
    assert_err!(
        check(&stream[..offsets[1] + 100]),
        VmaError::ShortExtent {
            got: 100,
            expected: 512,
            ..
        }
    );
    // Header only.
    assert_err!(
        check(&stream[..offsets[0]]),
        VmaError::MissingCluster { cluster: 0, .. }
    );
}

#[test]
fn duplicate_cluster_is_rejected() {
    // The extents of the archive repeated: cluster 0 of drive-scsi0 comes twice.
    let stream = sample();
    let start = header_size(&stream);
    let mut doubled = stream.clone();
    doubled.extend_from_slice(&stream[start..]);
    assert_err!(
        check(&doubled),
        VmaError::DuplicateCluster { device, cluster: 0, at: Location { extent: 3, .. } }
            if device == "drive-scsi0"
    );

    // A slot repeated within one extent: slots 0 and 1 of extent 1 are zero clusters 58
    // and 59 of drive-scsi0, so copying one over the other moves no data.
    let mut stream = sample();
    let at = extent_offsets(&stream)[1];
    assert_eq!(slot(&stream, at, 0), (1 << 32) | 58);
    assert_eq!(slot(&stream, at, 1), (1 << 32) | 59);
    set_slot(&mut stream, at, 1, (1 << 32) | 58);
    reseal_extent(&mut stream, at);
    assert_err!(
        check(&stream),
        VmaError::DuplicateCluster {
            cluster: 58,
            at: Location { extent: 1, .. },
            ..
        }
    );
}

#[test]
fn unknown_dev_id_and_cluster_out_of_range() {
    let mut stream = sample();
    let (at, last, value) = last_slot(&stream);
    set_slot(&mut stream, at, last, (value & !0xff_0000_0000) | (7 << 32));
    reseal_extent(&mut stream, at);
    assert_err!(check(&stream), VmaError::WrongDevId { dev_id: 7, .. });

    let mut stream = sample();
    set_slot(&mut stream, at, last, (value & !0xffff_ffff) | 30);
    reseal_extent(&mut stream, at);
    assert_err!(
        check(&stream),
        VmaError::ExtentClusterOutOfRange {
            cluster: 30,
            clusters: 30,
            ..
        }
    );
}

#[test]
fn stored_block_past_the_device_end_is_rejected() {
    // drive-scsi1 ends 5000 bytes before its last cluster's end: block 15 lies past it.
    let mut stream = sample();
    let (at, last, value) = last_slot(&stream);
    assert_eq!(value & 0xffff_ffff, 29);
    assert_eq!(value >> 48, 0, "the last cluster is a zero cluster");
    set_slot(&mut stream, at, last, value | (0x8000 << 48));
    stream[at + 6..at + 8].copy_from_slice(&1u16.to_be_bytes());
    reseal_extent(&mut stream, at);
    stream.extend_from_slice(&[1u8; BLOCK]);
    assert_err!(
        check(&stream),
        VmaError::BlockBeyondEnd {
            cluster: 29,
            block: 15,
            ..
        }
    );
}

#[test]
fn trailing_garbage_is_a_short_extent() {
    let mut stream = sample();
    stream.extend_from_slice(&[0u8; 10]);
    assert_err!(
        check(&stream),
        VmaError::ShortExtent {
            at: Location { extent: 3, .. },
            got: 10,
            ..
        }
    );
}

#[test]
fn sink_errors_abort_with_the_device_and_offset() {
    let stream = sample();
    let err = read_archive(stream.as_slice(), |dev_id, offset, _| {
        if dev_id == 1 && offset >= 5 * CLUSTER as u64 {
            Err(io::Error::other("no space"))
        } else {
            Ok(())
        }
    })
    .unwrap_err();
    assert_err!(
        err,
        VmaError::Sink { device, offset, .. }
            if device == "drive-scsi0" && *offset == 5 * CLUSTER as u64
    );
}
