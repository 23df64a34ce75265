//! Writer → reader round trips: the bytes read back equal the source exactly.

mod common;

use common::*;
use vma::{verify, ConfigBlob, DeviceInfo, Reader, Writer};

#[test]
fn device_with_holes_and_data() {
    // 20 clusters: full data, zero clusters, isolated blocks, a run crossing a cluster edge.
    let img = image(
        20 * CLUSTER,
        &[
            (0, CLUSTER),
            (3 * CLUSTER + 5 * BLOCK, 1),
            (7 * CLUSTER - 100, 200),
            (12 * CLUSTER + 4 * BLOCK, 3 * BLOCK),
            (20 * CLUSTER - 1, 1),
        ],
    );
    let stream = build(vec![], &[("drive-scsi0", &img)], None);
    let (info, images) = rebuild(&stream).unwrap();
    assert!(images[0] == img, "image differs");
    assert_eq!(info.devices[0].clusters, 20);
    // 16 + 1 + (1 + 1) + 3 + 1 stored blocks.
    assert_eq!(info.devices[0].stored_blocks, 23);
    assert_eq!(info.bytes, stream.len() as u64);
}

#[test]
fn two_devices_of_odd_sizes_out_of_order_and_interleaved() {
    // Neither size is a multiple of 64 KiB; the first is not even a multiple of 4 KiB.
    let a = image(5 * CLUSTER + 12345, &[(0, 5 * CLUSTER + 12345)]);
    let b = image(
        3 * CLUSTER + 2 * BLOCK,
        &[(CLUSTER, 2 * CLUSTER + 2 * BLOCK)],
    );
    let order = vec![
        (2, 3),
        (1, 5),
        (1, 0),
        (2, 0),
        (1, 3),
        (2, 2),
        (1, 1),
        (1, 4),
        (2, 1),
        (1, 2),
    ];
    let stream = build(
        vec![],
        &[("drive-scsi0", &a), ("drive-virtio1", &b)],
        Some(order),
    );
    let (info, images) = rebuild(&stream).unwrap();
    assert!(images[0] == a, "first image differs");
    assert!(images[1] == b, "second image differs");
    assert_eq!(
        info.header.devices,
        vec![
            DeviceInfo {
                dev_id: 1,
                name: "drive-scsi0".into(),
                size: a.len() as u64
            },
            DeviceInfo {
                dev_id: 2,
                name: "drive-virtio1".into(),
                size: b.len() as u64
            },
        ]
    );
    assert_eq!(info.devices[0].clusters, 6);
    assert_eq!(info.devices[1].clusters, 4);
}

#[test]
fn last_cluster_accepts_exact_length_and_ignores_bytes_past_the_end() {
    let size = 2 * CLUSTER + 5000;
    let img = image(size, &[(0, size)]);
    let mut exact = writer(&[("d", size as u64)]);
    let mut padded = writer(&[("d", size as u64)]);
    for c in 0..2u32 {
        let data = padded_cluster(&img, c);
        exact.write_cluster(1, c, &data).unwrap();
        padded.write_cluster(1, c, &data).unwrap();
    }
    exact.write_cluster(1, 2, &img[2 * CLUSTER..]).unwrap();
    let mut garbage = padded_cluster(&img, 2);
    garbage[5000..].fill(0xee);
    padded.write_cluster(1, 2, &garbage).unwrap();
    let exact = exact.finish().unwrap();
    let padded = padded.finish().unwrap();
    assert!(exact == padded, "streams differ");
    let (_, images) = rebuild(&exact).unwrap();
    assert!(images[0] == img);
}

#[test]
fn configs_round_trip_as_basenames() {
    let conf = b"boot: order=scsi0\nmemory: 2048\n".to_vec();
    let fw = vec![0u8, 1, 2, 255, 0];
    let img = image(CLUSTER, &[(10, 10)]);
    let stream = build(
        vec![
            ("/var/tmp/vzdumptmp1/qemu-server.conf".into(), conf.clone()),
            ("qemu-server.fw".into(), fw.clone()),
        ],
        &[("drive-scsi0", &img)],
        None,
    );
    let info = verify(stream.as_slice()).unwrap();
    assert_eq!(
        info.header.configs,
        vec![
            ConfigBlob {
                name: "qemu-server.conf".into(),
                data: conf
            },
            ConfigBlob {
                name: "qemu-server.fw".into(),
                data: fw
            },
        ]
    );
    assert_eq!(info.header.uuid, UUID);
    assert_eq!(info.header.ctime, CTIME);
}

#[test]
fn extents_hold_58_clusters_and_the_last_one_the_rest() {
    for (clusters, extents) in [(1usize, 1u64), (58, 1), (59, 2), (116, 2), (117, 3)] {
        let img = image(clusters * CLUSTER, &[(0, clusters * CLUSTER)]);
        let stream = build(vec![], &[("d", &img)], None);
        let info = verify(stream.as_slice()).unwrap();
        assert_eq!(info.extents, extents, "{clusters} clusters");
        let offsets = extent_offsets(&stream);
        assert_eq!(offsets.len() as u64, extents);
        let used: Vec<usize> = offsets
            .iter()
            .map(|&at| (0..59).filter(|&s| slot(&stream, at, s) != 0).count())
            .collect();
        assert!(used.iter().all(|&n| n <= 58), "{used:?}");
        assert_eq!(used.iter().sum::<usize>(), clusters);
    }
}

#[test]
fn header_is_written_with_the_first_flush() {
    let out = Shared::default();
    let size = 60 * CLUSTER as u64;
    let mut writer =
        Writer::new(out.clone(), UUID, CTIME, vec![], vec![("d".into(), size)]).unwrap();
    let data = pattern(3, CLUSTER);
    for c in 0..58 {
        writer.write_cluster(1, c, &data).unwrap();
    }
    assert!(
        out.0.borrow().is_empty(),
        "nothing is written before an extent is full"
    );
    writer.write_cluster(1, 58, &data).unwrap();
    let first = out.0.borrow().len();
    assert_eq!(first, header_size(&out.0.borrow()) + 512 + 58 * CLUSTER);
    writer.write_cluster(1, 59, &data).unwrap();
    writer.finish().unwrap();
    assert_eq!(out.0.borrow().len(), first + 512 + 2 * CLUSTER);
}

#[test]
fn reads_from_a_trickling_interrupted_pipe() {
    let img = image(
        9 * CLUSTER + 777,
        &[(100, 3 * CLUSTER), (8 * CLUSTER, CLUSTER + 777)],
    );
    let stream = build(vec![("c.conf".into(), b"x".to_vec())], &[("d", &img)], None);
    let mut rebuilt = vec![0u8; img.len()];
    let reader = Reader::new(Trickle {
        data: &stream,
        chunk: 1000,
        calls: 0,
    })
    .unwrap();
    assert_eq!(reader.header().devices[0].size, img.len() as u64);
    let info = reader
        .read_to_end(|_, offset, data| {
            rebuilt[offset as usize..offset as usize + data.len()].copy_from_slice(data);
            Ok(())
        })
        .unwrap();
    assert!(rebuilt == img);
    assert_eq!(info.bytes, stream.len() as u64);
}

#[test]
fn max_device_count_is_accepted() {
    let devices: Vec<(String, u64)> = (1..=254).map(|i| (format!("d{i}"), 4096)).collect();
    let mut writer = Writer::new(Vec::new(), UUID, CTIME, vec![], devices).unwrap();
    for dev_id in 1..=254u8 {
        writer
            .write_cluster(dev_id, 0, &pattern(u64::from(dev_id), 4096))
            .unwrap();
    }
    let stream = writer.finish().unwrap();
    let (info, images) = rebuild(&stream).unwrap();
    assert_eq!(info.header.devices.len(), 254);
    assert_eq!(info.header.devices[253].dev_id, 254);
    assert_eq!(images[200], pattern(201, 4096));
}
