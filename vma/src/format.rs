//! Sizes, offsets and the blockinfo bit layout shared by the writer and the reader.

/// File magic at byte 0 of the header: `VMA\0`.
pub const MAGIC: [u8; 4] = *b"VMA\0";
/// Magic at byte 0 of every extent header.
pub const EXTENT_MAGIC: [u8; 4] = *b"VMAE";
/// The only format version there is.
pub const VERSION: u32 = 1;

/// Unit of zero detection and of storage: a 4 KiB block.
pub const BLOCK_SIZE: usize = 4096;
/// Unit of addressing: a 64 KiB cluster of 16 blocks.
pub const CLUSTER_SIZE: usize = 65536;
/// Blocks per cluster (one mask bit each).
pub const BLOCKS_PER_CLUSTER: usize = CLUSTER_SIZE / BLOCK_SIZE;

/// Size of an extent header.
pub const EXTENT_HEADER_SIZE: usize = 512;
/// Blockinfo slots in an extent header.
pub const EXTENT_SLOTS: usize = 59;
/// Clusters the writer puts in one extent: QEMU flushes once 58 slots are filled.
pub const WRITER_EXTENT_CLUSTERS: usize = EXTENT_SLOTS - 1;
/// Largest possible extent: header plus 59 full clusters.
pub const MAX_EXTENT_SIZE: usize = EXTENT_HEADER_SIZE + EXTENT_SLOTS * CLUSTER_SIZE;

/// Size of the fixed part of the file header; the blob buffer follows it.
pub const HEADER_FIXED_SIZE: usize = 12288;
/// Largest header QEMU can write (its header buffer is 8 clusters).
pub const MAX_HEADER_SIZE: usize = 8 * CLUSTER_SIZE;
/// Largest blob (its length is a 16-bit field).
pub const MAX_BLOB_LEN: usize = 65535;
/// Config slots in the header.
pub const MAX_CONFIGS: usize = 256;
/// Highest device id QEMU assigns (255 is kept back, 0 means "no device").
pub const MAX_DEVICES: usize = 254;
/// Device name QEMU reserves for the VM's RAM state.
pub const VMSTATE_NAME: &str = "vmstate";

/// Byte offsets of the file header fields.
pub(crate) mod header_off {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 4;
    pub const UUID: usize = 8;
    pub const CTIME: usize = 24;
    pub const MD5: usize = 32;
    pub const BLOB_BUFFER_OFFSET: usize = 48;
    pub const BLOB_BUFFER_SIZE: usize = 52;
    pub const HEADER_SIZE: usize = 56;
    pub const CONFIG_NAMES: usize = 2044;
    pub const CONFIG_DATA: usize = 3068;
    pub const DEV_INFO: usize = 4096;
    /// Size of one `dev_info` record: name pointer, reserved, size, 16 reserved bytes.
    pub const DEV_INFO_SIZE: usize = 32;
}

/// Byte offsets of the extent header fields.
pub(crate) mod extent_off {
    pub const MAGIC: usize = 0;
    pub const RESERVED: usize = 4;
    pub const BLOCK_COUNT: usize = 6;
    pub const UUID: usize = 8;
    pub const MD5: usize = 24;
    pub const BLOCKINFO: usize = 40;
}

/// One blockinfo slot of an extent header, decoded.
///
/// Encoded as a big-endian u64: bits 48–63 mask, bits 40–47 reserved, bits 32–39 dev id,
/// bits 0–31 cluster number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockInfo {
    /// Bit i set: 4 KiB block i of the cluster is stored in the extent.
    pub mask: u16,
    /// Device id; 0 marks an empty slot.
    pub dev_id: u8,
    /// Cluster number within the device.
    pub cluster: u32,
}

impl BlockInfo {
    /// Packs the slot into its u64 value (before the big-endian conversion).
    pub fn encode(self) -> u64 {
        (u64::from(self.mask) << 48) | (u64::from(self.dev_id) << 32) | u64::from(self.cluster)
    }

    /// Unpacks a slot value; the reserved bits are ignored, as QEMU's reader does.
    pub fn decode(raw: u64) -> Self {
        // The truncating casts select the documented bit fields.
        BlockInfo {
            mask: (raw >> 48) as u16,
            dev_id: (raw >> 32) as u8,
            cluster: raw as u32,
        }
    }
}

/// Number of clusters covering `size` bytes.
pub(crate) fn cluster_count(size: u64) -> u64 {
    size.div_ceil(CLUSTER_SIZE as u64)
}

/// Bytes of `cluster` that lie inside a device of `size` bytes (0 when past the end).
pub(crate) fn bytes_in_device(size: u64, cluster: u32) -> usize {
    let start = u64::from(cluster) * CLUSTER_SIZE as u64;
    // At most CLUSTER_SIZE, so the cast is lossless.
    size.saturating_sub(start).min(CLUSTER_SIZE as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blockinfo_bit_layout() {
        let info = BlockInfo {
            mask: 0x8001,
            dev_id: 3,
            cluster: 0x0102_0304,
        };
        assert_eq!(info.encode(), 0x8001_0003_0102_0304);
        assert_eq!(BlockInfo::decode(0x8001_0003_0102_0304), info);
        // Reserved bits 40..48 do not leak into other fields.
        assert_eq!(BlockInfo::decode(0x8001_ff03_0102_0304), info);
    }

    #[test]
    fn sizes() {
        assert_eq!(MAX_EXTENT_SIZE, 3_867_136);
        assert_eq!(cluster_count(1), 1);
        assert_eq!(cluster_count(65536), 1);
        assert_eq!(cluster_count(65537), 2);
        assert_eq!(bytes_in_device(65537, 0), 65536);
        assert_eq!(bytes_in_device(65537, 1), 1);
        assert_eq!(bytes_in_device(65537, 2), 0);
    }
}
