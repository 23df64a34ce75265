//! The VMA reader and verifier (`vma/src/reader.rs`, `vma/src/header.rs`,
//! `vma/src/extent.rs`) on arbitrary archives.
//!
//! Input: the archive. A checksum left all zero (the header's md5, an extent header's
//! md5) is filled in before reading, so that mutations of a seed get past the checksum
//! checks to everything behind them; the seeds (`examples/vma_seeds.rs`) have theirs
//! zeroed, and a mutation that touches one tests the checks themselves.
//!
//! Checked: nothing panics, and nothing allocates beyond libFuzzer's limit; data handed
//! to the sink lies inside its device (block aligned, not past the end except for
//! `vmstate`); a verified archive is accounted for byte by byte (header, extent headers,
//! stored blocks), every cluster of every disk was seen, and `verify` agrees with the
//! reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use md5::{Digest, Md5};
use vma::format::{
    BLOCK_SIZE, CLUSTER_SIZE, EXTENT_HEADER_SIZE, HEADER_FIXED_SIZE, MAX_HEADER_SIZE,
};

// Field offsets of vma/src/format.rs (`header_off`, `extent_off`; crate-private there).
const HEADER_MD5: usize = 32;
const HEADER_SIZE: usize = 56;
const EXTENT_BLOCK_COUNT: usize = 6;
const EXTENT_MD5: usize = 24;

/// Computes the md5 of `region` with its md5 field (at `field`) zeroed, if it is zero.
fn fill_md5(region: &mut [u8], field: usize) {
    if region[field..field + 16].iter().all(|&b| b == 0) {
        let digest = Md5::digest(&*region);
        region[field..field + 16].copy_from_slice(&digest);
    }
}

fn fill_checksums(archive: &mut [u8]) {
    if archive.len() < HEADER_FIXED_SIZE {
        return;
    }
    let size = u32::from_be_bytes(archive[HEADER_SIZE..HEADER_SIZE + 4].try_into().unwrap());
    let size = size as usize;
    if size <= HEADER_FIXED_SIZE || size > MAX_HEADER_SIZE || size > archive.len() {
        return;
    }
    fill_md5(&mut archive[..size], HEADER_MD5);
    let mut at = size;
    while at + EXTENT_HEADER_SIZE <= archive.len() {
        fill_md5(&mut archive[at..at + EXTENT_HEADER_SIZE], EXTENT_MD5);
        let count = u16::from_be_bytes([
            archive[at + EXTENT_BLOCK_COUNT],
            archive[at + EXTENT_BLOCK_COUNT + 1],
        ]);
        at += EXTENT_HEADER_SIZE + usize::from(count) * BLOCK_SIZE;
    }
}

fuzz_target!(|data: &[u8]| {
    let mut archive = data.to_vec();
    fill_checksums(&mut archive);
    let reader = match vma::Reader::new(archive.as_slice()) {
        Ok(reader) => reader,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let header = reader.header().clone();
    let mut devices = [None; 256];
    for device in &header.devices {
        devices[usize::from(device.dev_id)] = Some((device.size, device.is_vmstate()));
    }
    let mut stored = 0u64;
    let read = reader.read_to_end(|dev_id, offset, bytes| {
        let (size, vmstate) = devices[usize::from(dev_id)].expect("data of a known device");
        assert!(!bytes.is_empty());
        assert_eq!(offset % BLOCK_SIZE as u64, 0);
        assert!(
            vmstate || offset + bytes.len() as u64 <= size,
            "data past the end"
        );
        stored += bytes.len() as u64;
        Ok(())
    });
    let verified = vma::verify(archive.as_slice());
    match read {
        Ok(info) => {
            let blocks: u64 = info.devices.iter().map(|d| d.stored_blocks).sum();
            assert_eq!(
                info.bytes,
                u64::from(header.header_size)
                    + info.extents * EXTENT_HEADER_SIZE as u64
                    + blocks * BLOCK_SIZE as u64
            );
            assert_eq!(info.bytes, archive.len() as u64);
            // The sink gets the stored blocks cut at the device end.
            assert!(stored <= blocks * BLOCK_SIZE as u64);
            for (device, stats) in header.devices.iter().zip(&info.devices) {
                if !device.is_vmstate() {
                    assert_eq!(stats.clusters, device.size.div_ceil(CLUSTER_SIZE as u64));
                }
            }
            assert_eq!(verified.expect("verify agrees"), info);
        }
        Err(e) => {
            let _ = e.to_string();
            assert!(
                verified.is_err(),
                "verify accepts what the reader refused: {e}"
            );
        }
    }
});
