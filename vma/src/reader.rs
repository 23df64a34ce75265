//! Streaming VMA reader and verifier; needs only `Read`, so pipes work.

use std::io::{self, Read};

use crate::bitmap::ClusterSet;
use crate::error::{Location, VmaError};
use crate::extent::{self, ExtentHeader};
use crate::format::{
    cluster_count, BLOCKS_PER_CLUSTER, BLOCK_SIZE, CLUSTER_SIZE, EXTENT_HEADER_SIZE, EXTENT_SLOTS,
    HEADER_FIXED_SIZE,
};
use crate::header::{self, ArchiveHeader};

/// What a device contributed to a completely read archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceStats {
    /// The device's id.
    pub dev_id: u8,
    /// Clusters seen (for a complete archive: all of them).
    pub clusters: u64,
    /// 4 KiB blocks stored (the rest were zero).
    pub stored_blocks: u64,
}

/// Summary of a completely read and verified archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveInfo {
    /// The decoded header.
    pub header: ArchiveHeader,
    /// Number of extents read.
    pub extents: u64,
    /// Per device, in the order of `header.devices`.
    pub devices: Vec<DeviceStats>,
    /// Total bytes read, header included.
    pub bytes: u64,
}

/// Reading state of one device.
struct Stream {
    name: String,
    size: u64,
    clusters: u64,
    vmstate: bool,
    seen: ClusterSet,
    /// Next expected cluster of a vmstate stream.
    next_vmstate: u64,
    stored_blocks: u64,
}

impl Stream {
    /// Records that `cluster` was seen: in sequence for vmstate, in range and for the first
    /// time otherwise.
    fn claim(&mut self, cluster: u32, at: Location) -> Result<(), VmaError> {
        if self.vmstate {
            if u64::from(cluster) != self.next_vmstate {
                return Err(VmaError::VmstateOutOfOrder {
                    at,
                    cluster,
                    expected: self.next_vmstate,
                });
            }
            self.next_vmstate += 1;
        } else if u64::from(cluster) >= self.clusters {
            return Err(VmaError::ExtentClusterOutOfRange {
                at,
                device: self.name.clone(),
                cluster,
                clusters: self.clusters,
            });
        } else if !self.seen.insert(cluster) {
            return Err(VmaError::DuplicateCluster {
                at,
                device: self.name.clone(),
                cluster,
            });
        }
        Ok(())
    }

    /// Where stored data must stop: the device size, unbounded for vmstate.
    fn end(&self) -> u64 {
        if self.vmstate {
            u64::MAX
        } else {
            self.size
        }
    }
}

/// Reads and verifies a VMA stream: the header on creation, then the extents.
pub struct Reader<R: Read> {
    input: R,
    header: ArchiveHeader,
    /// Index into `streams` per dev id.
    stream_of: [Option<usize>; 256],
    streams: Vec<Stream>,
    offset: u64,
    extents: u64,
    data: Vec<u8>,
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full<R: Read>(input: &mut R, buf: &mut [u8], offset: u64) -> Result<usize, VmaError> {
    let mut done = 0;
    while done < buf.len() {
        match input.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(VmaError::Read {
                    offset: offset + done as u64,
                    source,
                })
            }
        }
    }
    Ok(done)
}

impl<R: Read> Reader<R> {
    /// Reads and verifies the header: magic, size, md5, version, blob buffer bounds, blob
    /// pointers and NUL-terminated names, and that there is at least one device.
    pub fn new(mut input: R) -> Result<Self, VmaError> {
        let mut fixed = [0u8; HEADER_FIXED_SIZE];
        let got = read_full(&mut input, &mut fixed, 0)?;
        if got < HEADER_FIXED_SIZE {
            return Err(VmaError::ShortHeader {
                got: got as u64,
                expected: HEADER_FIXED_SIZE as u64,
            });
        }
        let total = header::total_size(&fixed)?;
        let mut head = vec![0u8; total];
        head[..HEADER_FIXED_SIZE].copy_from_slice(&fixed);
        let got = read_full(
            &mut input,
            &mut head[HEADER_FIXED_SIZE..],
            HEADER_FIXED_SIZE as u64,
        )?;
        if HEADER_FIXED_SIZE + got < total {
            return Err(VmaError::ShortHeader {
                got: (HEADER_FIXED_SIZE + got) as u64,
                expected: total as u64,
            });
        }
        let header = header::decode(head)?;

        let mut stream_of = [None; 256];
        let streams = header
            .devices
            .iter()
            .enumerate()
            .map(|(index, dev)| {
                stream_of[usize::from(dev.dev_id)] = Some(index);
                Stream {
                    name: dev.name.clone(),
                    size: dev.size,
                    clusters: cluster_count(dev.size),
                    vmstate: dev.is_vmstate(),
                    seen: ClusterSet::default(),
                    next_vmstate: 0,
                    stored_blocks: 0,
                }
            })
            .collect();
        Ok(Reader {
            input,
            header,
            stream_of,
            streams,
            offset: total as u64,
            extents: 0,
            data: vec![0u8; EXTENT_SLOTS * CLUSTER_SIZE],
        })
    }

    /// The verified header.
    pub fn header(&self) -> &ArchiveHeader {
        &self.header
    }

    /// Reads and verifies all extents up to the end of the input, then checks that every
    /// cluster of every device was seen.
    ///
    /// `on_data(dev_id, offset, bytes)` receives the stored data in stream order, one call
    /// per run of consecutive stored blocks of a cluster, cut at the device end (except for
    /// `vmstate`). Zero blocks produce no call. An error from `on_data` aborts the read.
    pub fn read_to_end<F>(mut self, mut on_data: F) -> Result<ArchiveInfo, VmaError>
    where
        F: FnMut(u8, u64, &[u8]) -> io::Result<()>,
    {
        let mut head = [0u8; EXTENT_HEADER_SIZE];
        loop {
            let at = Location {
                extent: self.extents,
                offset: self.offset,
            };
            let got = read_full(&mut self.input, &mut head, self.offset)?;
            if got == 0 {
                break;
            }
            if got < EXTENT_HEADER_SIZE {
                return Err(VmaError::ShortExtent {
                    at,
                    got: got as u64,
                    expected: EXTENT_HEADER_SIZE as u64,
                });
            }
            let extent = extent::check(&mut head, &self.header.uuid, at)?;
            let data_len = usize::from(extent.block_count) * BLOCK_SIZE;
            let data_offset = self.offset + EXTENT_HEADER_SIZE as u64;
            // block_count equals the mask bits of at most 59 slots, so this fits `data`.
            let got = read_full(&mut self.input, &mut self.data[..data_len], data_offset)?;
            if got < data_len {
                return Err(VmaError::ShortExtent {
                    at,
                    got: (EXTENT_HEADER_SIZE + got) as u64,
                    expected: (EXTENT_HEADER_SIZE + data_len) as u64,
                });
            }
            self.apply(&extent, at, &mut on_data)?;
            self.offset = data_offset + data_len as u64;
            self.extents += 1;
        }

        for stream in self.streams.iter().filter(|s| !s.vmstate) {
            if let Some(cluster) = stream.seen.first_missing(stream.clusters) {
                return Err(VmaError::MissingCluster {
                    device: stream.name.clone(),
                    cluster,
                });
            }
        }
        let devices = self
            .header
            .devices
            .iter()
            .zip(&self.streams)
            .map(|(dev, stream)| DeviceStats {
                dev_id: dev.dev_id,
                clusters: if stream.vmstate {
                    stream.next_vmstate
                } else {
                    stream.seen.len()
                },
                stored_blocks: stream.stored_blocks,
            })
            .collect();
        Ok(ArchiveInfo {
            header: self.header,
            extents: self.extents,
            devices,
            bytes: self.offset,
        })
    }

    /// Checks the slots of one extent against the devices and hands its data to `on_data`.
    fn apply<F>(
        &mut self,
        extent: &ExtentHeader,
        at: Location,
        on_data: &mut F,
    ) -> Result<(), VmaError>
    where
        F: FnMut(u8, u64, &[u8]) -> io::Result<()>,
    {
        let mut pos = 0usize;
        for slot in extent.slots.iter().filter(|s| s.dev_id != 0) {
            let index = self.stream_of[usize::from(slot.dev_id)].ok_or(VmaError::WrongDevId {
                at,
                dev_id: slot.dev_id,
            })?;
            let stream = &mut self.streams[index];
            stream.claim(slot.cluster, at)?;

            let cluster_start = u64::from(slot.cluster) * CLUSTER_SIZE as u64;
            let end = stream.end();
            let mut block = 0usize;
            while block < BLOCKS_PER_CLUSTER {
                if slot.mask & (1 << block) == 0 {
                    block += 1;
                    continue;
                }
                let run = (slot.mask >> block).trailing_ones() as usize;
                let offset = cluster_start + (block * BLOCK_SIZE) as u64;
                // Every stored block must start inside the device; checking the last one
                // of the run covers the others.
                let last = offset + ((run - 1) * BLOCK_SIZE) as u64;
                if last >= end {
                    let beyond =
                        block + ((end.saturating_sub(offset)).div_ceil(BLOCK_SIZE as u64)) as usize;
                    return Err(VmaError::BlockBeyondEnd {
                        at,
                        device: stream.name.clone(),
                        cluster: slot.cluster,
                        // Below 16.
                        block: beyond as u8,
                    });
                }
                let len = (run * BLOCK_SIZE).min((end - offset).try_into().unwrap_or(usize::MAX));
                on_data(slot.dev_id, offset, &self.data[pos..pos + len]).map_err(|source| {
                    VmaError::Sink {
                        device: stream.name.clone(),
                        offset,
                        source,
                    }
                })?;
                stream.stored_blocks += run as u64;
                pos += run * BLOCK_SIZE;
                block += run;
            }
        }
        Ok(())
    }
}

/// Reads and verifies a whole archive, handing stored data to `on_data` (see
/// [`Reader::read_to_end`]).
pub fn read_archive<R, F>(input: R, on_data: F) -> Result<ArchiveInfo, VmaError>
where
    R: Read,
    F: FnMut(u8, u64, &[u8]) -> io::Result<()>,
{
    Reader::new(input)?.read_to_end(on_data)
}

/// Verifies a whole archive without looking at the data, like `vma verify`.
pub fn verify<R: Read>(input: R) -> Result<ArchiveInfo, VmaError> {
    read_archive(input, |_, _, _| Ok(()))
}
