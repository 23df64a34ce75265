//! Writes the seed archives of the `vma_reader` target with the vma crate's writer:
//! `cargo run --manifest-path fuzz/Cargo.toml --example vma_seeds -- fuzz/corpus/vma_reader`.
//! Their checksums are zeroed (the target fills zeroed ones in), but for `sealed.vma`.

use std::path::Path;

use vma::format::{BLOCK_SIZE, EXTENT_HEADER_SIZE};
use vma::Writer;

const KIB: u64 = 1024;

fn archive(devices: &[(&str, u64)], fill: impl Fn(&mut Writer<Vec<u8>>)) -> Vec<u8> {
    let configs = vec![(
        "qemu-server.conf".to_string(),
        b"memory: 512\nscsi0: local:100/vm-100-disk-0.raw\n".to_vec(),
    )];
    let devices = devices.iter().map(|(n, s)| (n.to_string(), *s)).collect();
    let mut writer = Writer::new(Vec::new(), [7; 16], 1_700_000_000, configs, devices).unwrap();
    fill(&mut writer);
    writer.finish().unwrap()
}

/// Zeroes the header's and every extent's md5 (offsets of vma/src/format.rs).
fn unseal(mut bytes: Vec<u8>) -> Vec<u8> {
    let size = u32::from_be_bytes(bytes[56..60].try_into().unwrap()) as usize;
    bytes[32..48].fill(0);
    let mut at = size;
    while at < bytes.len() {
        bytes[at + 24..at + 40].fill(0);
        let count = u16::from_be_bytes([bytes[at + 6], bytes[at + 7]]);
        at += EXTENT_HEADER_SIZE + usize::from(count) * BLOCK_SIZE;
    }
    bytes
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: vma_seeds <corpus dir>");
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();
    let mut block = vec![0u8; 65536];
    block[..4096].fill(0xa5);
    block[8192..8200].copy_from_slice(b"VMAEdata");

    // One disk of 12 KiB: the first block stored, the straddling rest zero.
    let small = archive(&[("drive-scsi0", 12 * KIB)], |w| {
        w.write_cluster(1, 0, &block[..12 * 1024]).unwrap();
    });
    // Two disks, the second's last cluster partial; clusters out of order.
    let two = archive(
        &[("drive-scsi0", 128 * KIB), ("drive-virtio1", 70 * KIB)],
        |w| {
            w.write_cluster(2, 1, &block[..6 * 1024]).unwrap();
            w.write_zero_cluster(1, 1).unwrap();
            w.write_cluster(1, 0, &block).unwrap();
            w.write_cluster(2, 0, &block).unwrap();
        },
    );
    // An all-zero disk: one extent, mask 0.
    let zero = archive(&[("drive-efidisk0", 64 * KIB)], |w| {
        w.write_zero_cluster(1, 0).unwrap();
    });
    // A RAM-state stream: the writer refuses the name, so the name is changed after.
    let mut vmstate = archive(&[("drive-scsi0", 4 * KIB), ("vmstatX", 8 * KIB)], |w| {
        w.write_cluster(1, 0, &block[..4096]).unwrap();
        w.write_cluster(2, 0, &block[..8192]).unwrap();
    });
    let name = vmstate.windows(8).position(|w| w == b"vmstatX\0").unwrap();
    vmstate[name + 6] = b'e';

    for (file, bytes) in [
        ("sealed.vma", small.clone()),
        ("small.vma", unseal(small)),
        ("two-disks.vma", unseal(two)),
        ("zero.vma", unseal(zero)),
        ("vmstate.vma", unseal(vmstate)),
    ] {
        std::fs::write(dir.join(file), bytes).unwrap();
    }
}
