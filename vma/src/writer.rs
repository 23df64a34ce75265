//! Streaming VMA writer with QEMU's extent batching and byte accounting.

use std::io::Write;

use crate::bitmap::ClusterSet;
use crate::error::VmaError;
use crate::extent;
use crate::format::{
    bytes_in_device, cluster_count, BlockInfo, BLOCKS_PER_CLUSTER, BLOCK_SIZE, CLUSTER_SIZE,
    EXTENT_HEADER_SIZE, EXTENT_SLOTS, MAX_DEVICES, MAX_EXTENT_SIZE, VMSTATE_NAME,
    WRITER_EXTENT_CLUSTERS,
};
use crate::header;
use crate::names::check_file_name;
use crate::zero::is_zero;

/// Byte accounting of one written cluster, as QEMU reports it in `query-backup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClusterStats {
    /// Bytes of the device covered: `min(65536, size - cluster * 65536)`.
    pub transferred: u64,
    /// 4096 per all-zero block of the zero-padded 64 KiB cluster, 65536 for a zero cluster.
    ///
    /// Blocks past the device end are zero padding and count too, exactly as in QEMU's
    /// writer, so for the last cluster of a device this can exceed `transferred`.
    pub zero_bytes: u64,
}

/// Per-device state of the writer.
struct Stream {
    name: String,
    size: u64,
    clusters: u64,
    written: ClusterSet,
    transferred: u64,
}

/// Writes a VMA archive to `W` one cluster at a time.
///
/// Clusters may come in any order, interleaved across devices; each must come exactly once.
/// The header is written with the first extent, extents hold at most 58 clusters (as QEMU
/// writes them) and only one extent is buffered, so memory stays below 4 MiB plus one bit
/// per cluster. After an output error every further call fails with
/// [`VmaError::WriterFailed`]; argument errors leave the writer usable.
pub struct Writer<W: Write> {
    out: W,
    uuid: [u8; 16],
    /// The encoded header until the first flush writes it.
    pending_header: Option<Vec<u8>>,
    streams: Vec<Stream>,
    /// Extent header space followed by the stored blocks; never reallocated.
    extent: Vec<u8>,
    slots: [BlockInfo; EXTENT_SLOTS],
    used_slots: usize,
    failed: bool,
}

/// The basename QEMU stores for a config (`g_path_get_basename`), refused if unusable.
fn config_basename(name: &str) -> Result<&str, VmaError> {
    let trimmed = name.trim_end_matches('/');
    let base = trimmed.rsplit('/').next().unwrap_or(trimmed);
    check_file_name(base)
        .map(|()| base)
        .map_err(|_| VmaError::InvalidName {
            name: name.to_owned(),
            reason: "no usable file name",
        })
}

fn check_device(name: &str, size: u64) -> Result<(), VmaError> {
    check_file_name(name)?;
    if name == VMSTATE_NAME {
        return Err(VmaError::InvalidName {
            name: name.to_owned(),
            reason: "reserved for RAM state",
        });
    }
    if size == 0 {
        return Err(VmaError::StrangeSize {
            device: name.to_owned(),
            size,
        });
    }
    if cluster_count(size) > 1u64 << 32 {
        return Err(VmaError::DeviceTooLarge {
            device: name.to_owned(),
            size,
        });
    }
    Ok(())
}

impl<W: Write> Writer<W> {
    /// Prepares an archive; nothing is written yet.
    ///
    /// `devices` are (name, size in bytes) and get dev ids 1, 2, … in order. Config names
    /// are reduced to their basename as QEMU does. Refused: no devices (QEMU can neither
    /// write nor read such an archive), more than 254 devices, a size of 0 (`got strange
    /// size`), names that are not plain file names, the reserved device name `vmstate`,
    /// more than 256 configs, blobs over 65535 bytes and headers over 512 KiB.
    /// `ctime` is stored as is (QEMU uses the time of the first flush).
    pub fn new(
        out: W,
        uuid: [u8; 16],
        ctime: i64,
        configs: Vec<(String, Vec<u8>)>,
        devices: Vec<(String, u64)>,
    ) -> Result<Self, VmaError> {
        if devices.is_empty() {
            return Err(VmaError::NoDevices);
        }
        if devices.len() > MAX_DEVICES {
            return Err(VmaError::TooManyDevices(devices.len()));
        }
        for (name, size) in &devices {
            check_device(name, *size)?;
        }
        let configs = configs
            .into_iter()
            .map(|(name, data)| Ok((config_basename(&name)?.to_owned(), data)))
            .collect::<Result<Vec<_>, VmaError>>()?;
        let pending_header = Some(header::encode(&uuid, ctime, &configs, &devices)?);

        let streams = devices
            .into_iter()
            .map(|(name, size)| Stream {
                name,
                size,
                clusters: cluster_count(size),
                written: ClusterSet::default(),
                transferred: 0,
            })
            .collect();
        let mut extent = Vec::with_capacity(MAX_EXTENT_SIZE);
        extent.resize(EXTENT_HEADER_SIZE, 0);
        Ok(Writer {
            out,
            uuid,
            pending_header,
            streams,
            extent,
            slots: [BlockInfo::default(); EXTENT_SLOTS],
            used_slots: 0,
            failed: false,
        })
    }

    /// Adds one cluster of device `dev_id`.
    ///
    /// `data` is the cluster's content: 65536 bytes, or for the last cluster of a device
    /// either 65536 bytes or just the bytes inside the device. Bytes past the device end
    /// are ignored (the stored block straddling the end is zero-padded). All-zero 4 KiB
    /// blocks are not stored. Refuses an unknown dev id, a cluster past the device end, a
    /// cluster already written and a data length that fits neither rule.
    pub fn write_cluster(
        &mut self,
        dev_id: u8,
        cluster: u32,
        data: &[u8],
    ) -> Result<ClusterStats, VmaError> {
        self.add(dev_id, cluster, Some(data))
    }

    /// Adds a cluster known to be all zero (QEMU's NULL buffer): no zero check, no data
    /// stored, `zero_bytes` 65536.
    pub fn write_zero_cluster(
        &mut self,
        dev_id: u8,
        cluster: u32,
    ) -> Result<ClusterStats, VmaError> {
        self.add(dev_id, cluster, None)
    }

    /// Ends the archive: fails with `incomplete stream` if a device has unwritten
    /// clusters, otherwise writes the last extent (with the header if nothing was flushed
    /// yet; the extent is empty if no cluster is pending), flushes and returns the output.
    pub fn finish(mut self) -> Result<W, VmaError> {
        if self.failed {
            return Err(VmaError::WriterFailed);
        }
        if let Some(stream) = self.streams.iter().find(|s| s.written.len() != s.clusters) {
            return Err(VmaError::IncompleteStream {
                device: stream.name.clone(),
                transferred: stream.transferred,
                size: stream.size,
            });
        }
        self.flush()?;
        self.out.flush().map_err(VmaError::Write)?;
        Ok(self.out)
    }

    fn add(
        &mut self,
        dev_id: u8,
        cluster: u32,
        data: Option<&[u8]>,
    ) -> Result<ClusterStats, VmaError> {
        if self.failed {
            return Err(VmaError::WriterFailed);
        }
        let stream = usize::from(dev_id)
            .checked_sub(1)
            .and_then(|i| self.streams.get(i))
            .ok_or(VmaError::NoSuchStream { dev_id })?;
        if u64::from(cluster) >= stream.clusters {
            return Err(VmaError::ClusterOutOfRange {
                device: stream.name.clone(),
                cluster,
                clusters: stream.clusters,
            });
        }
        let inside = bytes_in_device(stream.size, cluster);
        if let Some(data) = data {
            if data.len() != CLUSTER_SIZE && data.len() != inside {
                return Err(VmaError::BadDataLength {
                    device: stream.name.clone(),
                    cluster,
                    len: data.len(),
                    expected: inside,
                });
            }
        }
        if stream.written.contains(cluster) {
            return Err(VmaError::ClusterAlreadyWritten {
                device: stream.name.clone(),
                cluster,
            });
        }
        // Like QEMU, make room before adding, so a full extent waits for the next cluster
        // (or `finish`) to be written.
        if self.used_slots >= WRITER_EXTENT_CLUSTERS {
            self.flush()?;
        }

        let (mask, zero_bytes) = match data {
            Some(data) => self.store_blocks(&data[..inside]),
            None => (0, CLUSTER_SIZE as u64),
        };
        self.slots[self.used_slots] = BlockInfo {
            mask,
            dev_id,
            cluster,
        };
        self.used_slots += 1;
        // The index was validated above.
        let stream = &mut self.streams[usize::from(dev_id) - 1];
        stream.written.insert(cluster);
        stream.transferred += inside as u64;
        Ok(ClusterStats {
            transferred: inside as u64,
            zero_bytes,
        })
    }

    /// Appends the non-zero blocks of `data` (the cluster's bytes inside the device) to the
    /// extent; returns the mask and the zero bytes of the padded cluster.
    fn store_blocks(&mut self, data: &[u8]) -> (u16, u64) {
        let mut mask = 0u16;
        let mut zero_bytes = 0u64;
        for i in 0..BLOCKS_PER_CLUSTER {
            let start = i * BLOCK_SIZE;
            let block = data.get(start..data.len().min(start + BLOCK_SIZE));
            match block {
                Some(block) if !block.is_empty() && !is_zero(block) => {
                    mask |= 1 << i;
                    self.extent.extend_from_slice(block);
                    // Zero-pad the block straddling the device end.
                    self.extent
                        .resize(self.extent.len() + BLOCK_SIZE - block.len(), 0);
                }
                _ => zero_bytes += BLOCK_SIZE as u64,
            }
        }
        (mask, zero_bytes)
    }

    /// Writes the header if still pending, then the buffered extent, and resets the buffer.
    fn flush(&mut self) -> Result<(), VmaError> {
        let block_count = (self.extent.len() - EXTENT_HEADER_SIZE) / BLOCK_SIZE;
        // At most 58 clusters of 16 blocks are buffered, far below u16::MAX.
        extent::seal(
            &mut self.extent,
            &self.uuid,
            block_count as u16,
            &self.slots,
        );
        let result = match self.pending_header.take() {
            Some(head) => self.out.write_all(&head),
            None => Ok(()),
        }
        .and_then(|()| self.out.write_all(&self.extent));
        if let Err(err) = result {
            self.failed = true;
            return Err(VmaError::Write(err));
        }
        self.extent.truncate(EXTENT_HEADER_SIZE);
        self.slots = [BlockInfo::default(); EXTENT_SLOTS];
        self.used_slots = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_are_reduced_to_basenames() {
        assert_eq!(
            config_basename("/var/tmp/vzdump/qemu-server.conf").unwrap(),
            "qemu-server.conf"
        );
        assert_eq!(config_basename("dir/fw/").unwrap(), "fw");
        assert_eq!(config_basename("plain").unwrap(), "plain");
        for bad in ["", "/", "a/..", "x/."] {
            assert!(config_basename(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn device_rules() {
        assert!(check_device("drive-scsi0", 1).is_ok());
        assert!(matches!(
            check_device("d", 0),
            Err(VmaError::StrangeSize { size: 0, .. })
        ));
        assert!(matches!(
            check_device("vmstate", 4096),
            Err(VmaError::InvalidName { .. })
        ));
        assert!(check_device("d", (1u64 << 48) + 1).is_err());
        assert!(check_device("d", 1u64 << 48).is_ok());
    }

    #[test]
    fn extent_buffer_is_never_reallocated() {
        let mut writer = Writer::new(
            Vec::new(),
            [1; 16],
            0,
            vec![],
            vec![("d".into(), 200 * CLUSTER_SIZE as u64)],
        )
        .unwrap();
        let capacity = writer.extent.capacity();
        let data: Vec<u8> = (0..CLUSTER_SIZE).map(|i| (i % 251 + 1) as u8).collect();
        for cluster in 0..200 {
            writer.write_cluster(1, cluster, &data).unwrap();
            assert_eq!(writer.extent.capacity(), capacity);
        }
        // 200 clusters = 3 flushed extents of 58 plus 26 pending.
        assert_eq!(writer.used_slots, 26);
    }
}
