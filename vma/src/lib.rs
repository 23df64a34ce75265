//! Writer, reader and verifier of Proxmox VMA backup archives, the format QEMU's `backup`
//! command streams for `vzdump` and `vma extract` restores.
//!
//! # Format
//!
//! All integers are big endian except the blob lengths.
//!
//! - **Header**: a fixed 12288-byte part (magic `VMA\0`, version 1, uuid, ctime, md5 of the
//!   whole header computed with the md5 field zeroed, blob buffer offset 12288 and used size,
//!   header size, 256 config name/data pointers, 256 × 32-byte device records of name
//!   pointer and size indexed by dev id 1..=254), then the blob buffer. Blobs are a
//!   little-endian u16 length and the bytes; position 0 is unused so that 0 means "none";
//!   names are NUL-terminated; the buffer grows in 512-byte steps.
//! - **Extents** until the end of the stream: a 512-byte header (magic `VMAE`, reserved 0,
//!   block count, uuid, md5 of the 512 bytes with the md5 field zeroed, 59 blockinfo
//!   slots) then the stored 4 KiB blocks. A blockinfo is `mask << 48 | dev_id << 32 |
//!   cluster`; bit i of the mask says block i of the 64 KiB cluster is stored; blocks follow
//!   in slot order, then bit order. The block count equals the number of mask bits set.
//! - **Rules**: every cluster of every device appears exactly once, in any order, zero
//!   clusters with mask 0; all-zero blocks are not stored; the block straddling a device end
//!   is stored zero-padded and blocks past the end never are. QEMU's writer flushes an
//!   extent once 58 slots are used, writes the header with the first flush and writes a
//!   final extent (empty if nothing is pending) when the last device completes.
//!
//! # Use
//!
//! - [`Writer`] streams an archive to any `Write`, reporting QEMU's per-cluster byte
//!   accounting ([`ClusterStats`]).
//! - [`Reader`], [`read_archive`] and [`verify`] read from any `Read` (pipes included)
//!   and check everything `vma verify` checks, with errors that name the extent, byte
//!   offset, device and cluster ([`VmaError`]).
//! - [`extract_to_dir`] does what `vma extract` does, with sparse disk images.
//!
//! The library never prints.
//!
//! ```
//! use vma::{verify, Writer};
//!
//! let configs = vec![("qemu-server.conf".to_string(), b"memory: 512\n".to_vec())];
//! let devices = vec![("drive-scsi0".to_string(), 100_000u64)];
//! let mut writer = Writer::new(Vec::new(), [7; 16], 1_700_000_000, configs, devices)?;
//! let stats = writer.write_cluster(1, 0, &[1u8; 65536])?;
//! assert_eq!((stats.transferred, stats.zero_bytes), (65536, 0));
//! // The last cluster holds the remaining 34464 bytes; the 7 blocks past the end count
//! // as zero bytes, as QEMU counts them.
//! let stats = writer.write_zero_cluster(1, 1)?;
//! assert_eq!((stats.transferred, stats.zero_bytes), (34464, 65536));
//! let archive = writer.finish()?;
//!
//! let info = verify(archive.as_slice())?;
//! assert_eq!(info.header.devices[0].name, "drive-scsi0");
//! assert_eq!(info.devices[0].clusters, 2);
//! # Ok::<(), vma::VmaError>(())
//! ```

#![warn(missing_docs)]

mod bitmap;
mod error;
mod extent;
mod extract;
pub mod format;
mod header;
mod names;
mod reader;
mod writer;
mod zero;

pub use error::{Location, VmaError};
pub use extract::extract_to_dir;
pub use header::{uuid_string, ArchiveHeader, ConfigBlob, DeviceInfo};
pub use reader::{read_archive, verify, ArchiveInfo, DeviceStats, Reader};
pub use writer::{ClusterStats, Writer};
