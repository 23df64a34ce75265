//! The 512-byte extent header: sealing (writer) and checking (reader).

use md5::{Digest, Md5};

use crate::error::{Location, VmaError};
use crate::format::{extent_off as off, BlockInfo, EXTENT_HEADER_SIZE, EXTENT_MAGIC, EXTENT_SLOTS};

/// A checked extent header.
#[derive(Debug)]
pub(crate) struct ExtentHeader {
    /// Number of 4 KiB blocks following the header.
    pub block_count: u16,
    /// The blockinfo slots; dev id 0 marks an empty one.
    pub slots: [BlockInfo; EXTENT_SLOTS],
}

/// Fills `head` (the first 512 bytes of an extent) with magic, counts, uuid, slots and md5.
pub(crate) fn seal(
    head: &mut [u8],
    uuid: &[u8; 16],
    block_count: u16,
    slots: &[BlockInfo; EXTENT_SLOTS],
) {
    let head = &mut head[..EXTENT_HEADER_SIZE];
    head[off::MAGIC..off::MAGIC + 4].copy_from_slice(&EXTENT_MAGIC);
    head[off::RESERVED..off::RESERVED + 2].fill(0);
    head[off::BLOCK_COUNT..off::BLOCK_COUNT + 2].copy_from_slice(&block_count.to_be_bytes());
    head[off::UUID..off::UUID + 16].copy_from_slice(uuid);
    head[off::MD5..off::MD5 + 16].fill(0);
    for (i, slot) in slots.iter().enumerate() {
        let at = off::BLOCKINFO + 8 * i;
        head[at..at + 8].copy_from_slice(&slot.encode().to_be_bytes());
    }
    let digest = Md5::digest(&*head);
    head[off::MD5..off::MD5 + 16].copy_from_slice(&digest);
}

/// Checks an extent header in QEMU's order (md5, uuid, magic and reserved field), then that
/// `block_count` equals the mask bits of the used slots. `head` is modified (md5 zeroed).
pub(crate) fn check(
    head: &mut [u8; EXTENT_HEADER_SIZE],
    uuid: &[u8; 16],
    at: Location,
) -> Result<ExtentHeader, VmaError> {
    let mut stored = [0u8; 16];
    stored.copy_from_slice(&head[off::MD5..off::MD5 + 16]);
    head[off::MD5..off::MD5 + 16].fill(0);
    if Md5::digest(&head[..])[..] != stored {
        return Err(VmaError::ExtentChecksum { at });
    }
    if &head[off::UUID..off::UUID + 16] != uuid {
        return Err(VmaError::ExtentUuid { at });
    }
    if head[off::MAGIC..off::MAGIC + 4] != EXTENT_MAGIC
        || head[off::RESERVED..off::RESERVED + 2] != [0, 0]
    {
        return Err(VmaError::ExtentMagic { at });
    }
    let block_count = u16::from_be_bytes([head[off::BLOCK_COUNT], head[off::BLOCK_COUNT + 1]]);

    let mut slots = [BlockInfo::default(); EXTENT_SLOTS];
    let mut marked = 0u32;
    for (i, slot) in slots.iter_mut().enumerate() {
        let at = off::BLOCKINFO + 8 * i;
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&head[at..at + 8]);
        *slot = BlockInfo::decode(u64::from_be_bytes(raw));
        // QEMU's reader skips empty slots without consuming data, whatever their mask.
        if slot.dev_id != 0 {
            marked += slot.mask.count_ones();
        }
    }
    if marked != u32::from(block_count) {
        return Err(VmaError::BlockCount {
            at,
            block_count,
            marked,
        });
    }
    Ok(ExtentHeader { block_count, slots })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Location = Location {
        extent: 0,
        offset: 12800,
    };

    /// Empty slots but for `used`: (slot, mask, dev id, cluster).
    fn slots(used: &[(usize, u16, u8, u32)]) -> [BlockInfo; EXTENT_SLOTS] {
        let mut slots = [BlockInfo::default(); EXTENT_SLOTS];
        for &(i, mask, dev_id, cluster) in used {
            slots[i] = BlockInfo {
                mask,
                dev_id,
                cluster,
            };
        }
        slots
    }

    fn sealed(block_count: u16, slots: &[BlockInfo; EXTENT_SLOTS]) -> [u8; EXTENT_HEADER_SIZE] {
        let mut head = [0xaau8; EXTENT_HEADER_SIZE];
        seal(&mut head, &[9; 16], block_count, slots);
        head
    }

    #[test]
    fn layout_and_round_trip() {
        let slots = slots(&[(0, 0b101, 2, 5)]);
        let mut head = sealed(2, &slots);
        assert_eq!(&head[0..4], b"VMAE");
        assert_eq!(&head[4..8], &[0, 0, 0, 2]);
        assert_eq!(&head[8..24], &[9; 16]);
        assert_eq!(&head[40..48], &[0, 5, 0, 2, 0, 0, 0, 5]);
        assert!(head[48..].iter().all(|&b| b == 0));
        let checked = check(&mut head, &[9; 16], AT).unwrap();
        assert_eq!(checked.block_count, 2);
        assert_eq!(checked.slots, slots);
    }

    #[test]
    fn block_count_must_match_masks() {
        // Slot 4 is empty (dev id 0): its mask bits do not count.
        let mut head = sealed(15, &slots(&[(3, 0xffff, 1, 0), (4, 0xffff, 0, 0)]));
        let err = check(&mut head, &[9; 16], AT).unwrap_err();
        assert!(
            matches!(
                err,
                VmaError::BlockCount {
                    block_count: 15,
                    marked: 16,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn checksum_uuid_magic() {
        let slots = slots(&[]);
        let mut head = sealed(0, &slots);
        head[100] ^= 1;
        let err = check(&mut head, &[9; 16], AT).unwrap_err();
        assert!(matches!(err, VmaError::ExtentChecksum { at: AT }), "{err}");

        let mut head = sealed(0, &slots);
        let err = check(&mut head, &[8; 16], AT).unwrap_err();
        assert!(matches!(err, VmaError::ExtentUuid { .. }), "{err}");

        let mut head = sealed(0, &slots);
        head[4] = 1;
        head[24..40].fill(0);
        let digest = Md5::digest(&head[..]);
        head[24..40].copy_from_slice(&digest);
        let err = check(&mut head, &[9; 16], AT).unwrap_err();
        assert!(matches!(err, VmaError::ExtentMagic { .. }), "{err}");
    }
}
