//! The error type of the crate.
//!
//! Messages start with QEMU's wording where it has one (`got strange size`, `incomplete
//! stream`, `detected missing cluster ... for stream ...`) and add where the fault was found.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Where in a stream an extent fault was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Index of the extent, 0 for the first one after the header.
    pub extent: u64,
    /// Byte offset of the extent's header from the start of the stream.
    pub offset: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "extent {} (byte offset {})", self.extent, self.offset)
    }
}

/// Everything that can go wrong writing, reading or extracting a VMA archive.
#[derive(Debug, thiserror::Error)]
pub enum VmaError {
    // --- archive description (writer) ---
    /// More devices than dev ids 1..=254.
    #[error("too many drives ({0} > 254)")]
    TooManyDevices(usize),
    /// A device of size 0.
    #[error("got strange size {size} for device '{device}'")]
    StrangeSize {
        /// Device name.
        device: String,
        /// The rejected size.
        size: u64,
    },
    /// A device with more clusters than a 32-bit cluster number can address.
    #[error("device '{device}' is too large ({size} bytes; cluster numbers are 32-bit)")]
    DeviceTooLarge {
        /// Device name.
        device: String,
        /// The rejected size.
        size: u64,
    },
    /// An archive without devices: QEMU neither writes nor reads one.
    #[error("vma does not contain data")]
    NoDevices,
    /// More config blobs than header slots.
    #[error("too many config blobs ({0} > 256)")]
    TooManyConfigs(usize),
    /// A config or device name unusable in the archive or as a file name.
    #[error("invalid name '{name}': {reason}")]
    InvalidName {
        /// The name (lossy if it was not UTF-8).
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A blob longer than its 16-bit length field allows.
    #[error("blob '{name}' too large ({len} > 65535 bytes)")]
    BlobTooLarge {
        /// Config or device name the blob belongs to.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A header larger than QEMU's 512 KiB header buffer.
    #[error("vma header too large ({size} > 524288 bytes)")]
    HeaderTooLarge {
        /// The header size that was computed or read.
        size: u64,
    },

    // --- writer calls ---
    /// A dev id that names no device.
    #[error("no such stream {dev_id}")]
    NoSuchStream {
        /// The rejected dev id.
        dev_id: u8,
    },
    /// A cluster number past the end of the device.
    #[error(
        "cluster number too big: cluster {cluster} of '{device}' (device has {clusters} clusters)"
    )]
    ClusterOutOfRange {
        /// Device name.
        device: String,
        /// The rejected cluster.
        cluster: u32,
        /// Clusters of the device.
        clusters: u64,
    },
    /// Cluster data of a length that is neither a full cluster nor the device's remainder.
    #[error("cluster {cluster} of '{device}': got {len} bytes, expected 65536 or {expected}")]
    BadDataLength {
        /// Device name.
        device: String,
        /// Cluster number.
        cluster: u32,
        /// Length given.
        len: usize,
        /// Bytes of this cluster inside the device.
        expected: usize,
    },
    /// The same cluster given twice.
    #[error("cluster {cluster} of '{device}' already written")]
    ClusterAlreadyWritten {
        /// Device name.
        device: String,
        /// Cluster number.
        cluster: u32,
    },
    /// `finish` with clusters of a device never written.
    #[error("incomplete stream '{device}' ({transferred} != {size})")]
    IncompleteStream {
        /// Device name.
        device: String,
        /// Bytes of the device covered by written clusters.
        transferred: u64,
        /// Device size.
        size: u64,
    },
    /// A call after an earlier write error left the output unusable.
    #[error("vma writer failed earlier, the stream is unusable")]
    WriterFailed,
    /// Writing to the output failed.
    #[error("vma write failed: {0}")]
    Write(#[source] io::Error),

    // --- file header (reader) ---
    /// Reading the input failed.
    #[error("read failed at byte offset {offset}: {source}")]
    Read {
        /// Stream offset of the failed read.
        offset: u64,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The input ended inside the file header.
    #[error("can't read vma header - got EOF after {got} of {expected} bytes")]
    ShortHeader {
        /// Bytes read.
        got: u64,
        /// Bytes needed.
        expected: u64,
    },
    /// The first 4 bytes are not `VMA\0`.
    #[error("not a vma file - wrong magic number")]
    BadMagic,
    /// `header_size` leaves no room for a blob buffer.
    #[error("wrong vma header size {0}")]
    BadHeaderSize(u32),
    /// The header's md5 does not match.
    #[error("wrong vma header checksum")]
    HeaderChecksum,
    /// A version other than 1.
    #[error("wrong vma version {0}")]
    BadVersion(u32),
    /// The blob buffer does not lie within the header.
    #[error("wrong vma blob buffer offset/size {offset}/{size} (header size {header_size})")]
    BadBlobBuffer {
        /// `blob_buffer_offset`.
        offset: u32,
        /// `blob_buffer_size`.
        size: u32,
        /// `header_size`.
        header_size: u32,
    },
    /// A config slot whose name or data pointer resolves to no blob.
    #[error("vma contains invalid data pointers (config slot {index})")]
    InvalidDataPointers {
        /// Index of the config slot.
        index: usize,
    },

    // --- extents (reader) ---
    /// The input ended inside an extent.
    #[error("short vma extent at {at}: got {got} of {expected} bytes")]
    ShortExtent {
        /// Where the extent starts.
        at: Location,
        /// Bytes of the extent read.
        got: u64,
        /// Bytes the extent needs.
        expected: u64,
    },
    /// An extent header's md5 does not match.
    #[error("wrong vma extent header checksum at {at}")]
    ExtentChecksum {
        /// The extent.
        at: Location,
    },
    /// An extent carries another archive's uuid.
    #[error("wrong vma extent uuid at {at}")]
    ExtentUuid {
        /// The extent.
        at: Location,
    },
    /// Bad extent magic or non-zero reserved field.
    #[error("wrong vma extent header magic at {at}")]
    ExtentMagic {
        /// The extent.
        at: Location,
    },
    /// `block_count` differs from the number of mask bits set.
    #[error(
        "vma extent error at {at}: block_count {block_count} but the masks mark {marked} blocks"
    )]
    BlockCount {
        /// The extent.
        at: Location,
        /// Its `block_count` field.
        block_count: u16,
        /// Mask bits set in its used slots.
        marked: u32,
    },
    /// A blockinfo naming a dev id with no device.
    #[error("got wrong dev id {dev_id} at {at}")]
    WrongDevId {
        /// The extent.
        at: Location,
        /// The dev id found.
        dev_id: u8,
    },
    /// A blockinfo naming a cluster past the end of its device.
    #[error("cluster {cluster} out of range for stream {device} ({clusters} clusters) at {at}")]
    ExtentClusterOutOfRange {
        /// The extent.
        at: Location,
        /// Device name.
        device: String,
        /// The cluster found.
        cluster: u32,
        /// Clusters of the device.
        clusters: u64,
    },
    /// A cluster seen a second time.
    #[error("found duplicated cluster {cluster} for stream {device} at {at}")]
    DuplicateCluster {
        /// The extent.
        at: Location,
        /// Device name.
        device: String,
        /// The cluster.
        cluster: u32,
    },
    /// A stored block that starts at or after the device end.
    #[error("got wrong block address - write beyond end: block {block} of cluster {cluster} of {device} at {at}")]
    BlockBeyondEnd {
        /// The extent.
        at: Location,
        /// Device name.
        device: String,
        /// The cluster.
        cluster: u32,
        /// Block index within the cluster.
        block: u8,
    },
    /// A vmstate cluster out of sequence.
    #[error("found out of order vmstate data at {at}: cluster {cluster}, expected {expected}")]
    VmstateOutOfOrder {
        /// The extent.
        at: Location,
        /// The cluster found.
        cluster: u32,
        /// The cluster expected.
        expected: u64,
    },
    /// A cluster never seen by the end of the stream.
    #[error("detected missing cluster {cluster} for stream {device}")]
    MissingCluster {
        /// Device name.
        device: String,
        /// The first missing cluster.
        cluster: u64,
    },
    /// The data callback failed.
    #[error("writing data of {device} at offset {offset} failed: {source}")]
    Sink {
        /// Device name.
        device: String,
        /// Byte offset within the device.
        offset: u64,
        /// The callback's error.
        #[source]
        source: io::Error,
    },

    // --- extraction ---
    /// A file operation of the extraction failed.
    #[error("extract to {} failed: {source}", path.display())]
    Extract {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}
