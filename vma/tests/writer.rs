//! Writer accounting (QEMU's transferred / zero-bytes) and argument checks.

mod common;

use common::*;
use vma::{verify, ClusterStats, VmaError, Writer};

fn one_device(size: u64) -> Writer<Vec<u8>> {
    writer(&[("drive-scsi0", size)])
}

#[test]
fn three_zero_blocks_count_12288() {
    let mut writer = one_device(CLUSTER as u64);
    let mut data = pattern(1, CLUSTER);
    for block in [0, 7, 15] {
        data[block * BLOCK..(block + 1) * BLOCK].fill(0);
    }
    let stats = writer.write_cluster(1, 0, &data).unwrap();
    assert_eq!(
        stats,
        ClusterStats {
            transferred: 65536,
            zero_bytes: 12288
        }
    );
    let stream = writer.finish().unwrap();
    let at = extent_offsets(&stream)[0];
    // Mask: every block except 0, 7 and 15.
    assert_eq!(slot(&stream, at, 0) >> 48, 0x7f7e);
    let (info, images) = rebuild(&stream).unwrap();
    assert_eq!(info.devices[0].stored_blocks, 13);
    assert!(images[0] == data);
}

#[test]
fn zero_cluster_counts_65536_and_stores_nothing() {
    let mut writer = one_device(2 * CLUSTER as u64);
    let stats = writer.write_cluster(1, 0, &vec![0u8; CLUSTER]).unwrap();
    assert_eq!(
        stats,
        ClusterStats {
            transferred: 65536,
            zero_bytes: 65536
        }
    );
    let stats = writer.write_zero_cluster(1, 1).unwrap();
    assert_eq!(
        stats,
        ClusterStats {
            transferred: 65536,
            zero_bytes: 65536
        }
    );
    let stream = writer.finish().unwrap();
    // Header plus one extent header, no data blocks.
    assert_eq!(stream.len(), header_size(&stream) + 512);
    let at = extent_offsets(&stream)[0];
    assert_eq!(slot(&stream, at, 0), 1 << 32);
    assert_eq!(slot(&stream, at, 1), (1 << 32) | 1);
    let info = verify(stream.as_slice()).unwrap();
    assert_eq!(info.devices[0].stored_blocks, 0);
    assert_eq!(info.devices[0].clusters, 2);
}

#[test]
fn last_cluster_accounting_counts_padding_blocks_as_zero() {
    // 5000 bytes in the last cluster: block 0 inside, block 1 straddles the end, blocks
    // 2..16 are past the end and count as zero padding (as in QEMU).
    let size = CLUSTER + 5000;
    let mut writer = one_device(size as u64);
    writer.write_zero_cluster(1, 0).unwrap();
    let tail = pattern(9, 5000);
    let stats = writer.write_cluster(1, 1, &tail).unwrap();
    assert_eq!(
        stats,
        ClusterStats {
            transferred: 5000,
            zero_bytes: 14 * 4096
        }
    );
    let stream = writer.finish().unwrap();
    let at = extent_offsets(&stream)[0];
    assert_eq!(slot(&stream, at, 1) >> 48, 0b11);
    // The straddling block is stored zero-padded.
    let data = at + 512;
    assert_eq!(&stream[data..data + 5000], &tail[..]);
    assert!(stream[data + 5000..data + 2 * BLOCK]
        .iter()
        .all(|&b| b == 0));
    assert_eq!(stream.len(), data + 2 * BLOCK);
}

#[test]
fn transferred_sums_to_the_device_size() {
    let size = 7 * CLUSTER + 333;
    let img = image(size, &[(0, size)]);
    let mut writer = one_device(size as u64);
    let total: u64 = (0..clusters_of(&img))
        .map(|c| {
            writer
                .write_cluster(1, c, &padded_cluster(&img, c))
                .unwrap()
                .transferred
        })
        .sum();
    assert_eq!(total, size as u64);
    writer.finish().unwrap();
}

#[test]
fn rejects_bad_cluster_calls_and_stays_usable() {
    let size = 2 * CLUSTER as u64 + 10;
    let mut writer = writer(&[("a", size), ("b", 4096)]);
    let full = pattern(2, CLUSTER);
    for dev_id in [0, 3, 255] {
        let err = assert_err!(
            writer.write_cluster(dev_id, 0, &full).unwrap_err(),
            VmaError::NoSuchStream { dev_id: d } if *d == dev_id
        );
        assert_eq!(err.to_string(), format!("no such stream {dev_id}"));
    }
    assert_err!(
        writer.write_cluster(1, 3, &full).unwrap_err(),
        VmaError::ClusterOutOfRange {
            cluster: 3,
            clusters: 3,
            ..
        }
    );
    assert_err!(
        writer.write_cluster(1, 0, &full[..100]).unwrap_err(),
        VmaError::BadDataLength { len: 100, .. }
    );
    // Only the last cluster may be short, and only to the device end.
    assert_err!(
        writer.write_cluster(1, 2, &full[..11]).unwrap_err(),
        VmaError::BadDataLength { expected: 10, .. }
    );

    writer.write_cluster(1, 0, &full).unwrap();
    assert_err!(
        writer.write_zero_cluster(1, 0).unwrap_err(),
        VmaError::ClusterAlreadyWritten { cluster: 0, .. }
    );

    writer.write_cluster(1, 1, &full).unwrap();
    writer.write_cluster(1, 2, &full[..10]).unwrap();
    writer.write_cluster(2, 0, &full[..4096]).unwrap();
    let stream = writer.finish().unwrap();
    let (_, images) = rebuild(&stream).unwrap();
    assert_eq!(images[0][..CLUSTER], full[..]);
    assert_eq!(images[0][2 * CLUSTER..], full[..10]);
}

#[test]
fn finish_refuses_an_incomplete_stream() {
    let mut writer = writer(&[("drive-scsi0", 65536), ("drive-scsi1", 200_000)]);
    writer.write_zero_cluster(1, 0).unwrap();
    writer.write_zero_cluster(2, 0).unwrap();
    writer.write_zero_cluster(2, 3).unwrap();
    let err = writer.finish().unwrap_err();
    assert_eq!(
        err.to_string(),
        "incomplete stream 'drive-scsi1' (68928 != 200000)"
    );
}

#[test]
fn rejects_bad_archive_descriptions() {
    let new = |configs: Vec<(String, Vec<u8>)>, devices: Vec<(String, u64)>| {
        Writer::new(Vec::new(), UUID, CTIME, configs, devices).map(|_| ())
    };
    let err = new(vec![], vec![("d".into(), 0)]).unwrap_err();
    assert!(err.to_string().starts_with("got strange size 0"), "{err}");
    let many = (0..255).map(|i| (format!("d{i}"), 1)).collect();
    assert!(matches!(
        new(vec![], many),
        Err(VmaError::TooManyDevices(255))
    ));
    assert!(matches!(new(vec![], vec![]), Err(VmaError::NoDevices)));
    for bad in ["", "a/b", "vmstate", ".."] {
        let err = new(vec![], vec![(bad.into(), 1)]).unwrap_err();
        assert!(
            matches!(err, VmaError::InvalidName { .. }),
            "{bad:?}: {err}"
        );
    }
    assert_err!(
        new(vec![("/".into(), vec![1])], vec![("d".into(), 1)]).unwrap_err(),
        VmaError::InvalidName { .. }
    );
    let configs = (0..257).map(|i| (format!("c{i}"), vec![1])).collect();
    assert!(matches!(
        new(configs, vec![("d".into(), 1)]),
        Err(VmaError::TooManyConfigs(257))
    ));
    assert_err!(
        new(vec![("big".into(), vec![1; 70000])], vec![("d".into(), 1)]).unwrap_err(),
        VmaError::BlobTooLarge { len: 70000, .. }
    );
}

#[test]
fn output_error_poisons_the_writer() {
    let mut writer = Writer::new(
        Failing { budget: 20000 },
        UUID,
        CTIME,
        vec![],
        vec![("d".into(), 100 * CLUSTER as u64)],
    )
    .unwrap();
    let data = pattern(5, CLUSTER);
    let mut result = Ok(ClusterStats::default());
    for c in 0..59 {
        result = writer.write_cluster(1, c, &data);
    }
    let err = assert_err!(result.unwrap_err(), VmaError::Write(_));
    assert!(err.to_string().contains("disk full"), "{err}");
    assert!(matches!(
        writer.write_cluster(1, 60, &data),
        Err(VmaError::WriterFailed)
    ));
    assert!(matches!(writer.finish(), Err(VmaError::WriterFailed)));
}
