//! The file header: encoding (writer) and decoding with QEMU's checks (reader).

use md5::{Digest, Md5};

use crate::error::VmaError;
use crate::format::{
    header_off as off, HEADER_FIXED_SIZE, MAGIC, MAX_BLOB_LEN, MAX_CONFIGS, MAX_HEADER_SIZE,
    VERSION, VMSTATE_NAME,
};

/// A config file stored in the header (e.g. `qemu-server.conf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigBlob {
    /// File name (a basename).
    pub name: String,
    /// File content.
    pub data: Vec<u8>,
}

/// A device described by the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Device id used by the extents, 1..=255.
    pub dev_id: u8,
    /// Device name (e.g. `drive-scsi0`).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
}

impl DeviceInfo {
    /// Whether this is the RAM-state stream (`vmstate`), whose clusters are sequential and
    /// not bounded by the size.
    pub fn is_vmstate(&self) -> bool {
        self.name == VMSTATE_NAME
    }
}

/// The decoded file header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveHeader {
    /// Archive uuid (the backup job's uuid); every extent repeats it.
    pub uuid: [u8; 16],
    /// Creation time, seconds since the epoch.
    pub ctime: i64,
    /// Config blobs in slot order.
    pub configs: Vec<ConfigBlob>,
    /// Devices in dev id order.
    pub devices: Vec<DeviceInfo>,
    /// Total header size in bytes; the first extent starts here.
    pub header_size: u32,
}

impl ArchiveHeader {
    /// The archive uuid as 32 lower-case hex digits, without dashes.
    pub fn uuid_hex(&self) -> String {
        hex(&self.uuid)
    }

    /// The archive uuid in the canonical form ([`uuid_string`]): the job uuid that
    /// `backup` returned for the backup that wrote the archive.
    pub fn uuid_string(&self) -> String {
        uuid_string(&self.uuid)
    }
}

/// 16 uuid bytes in the canonical lower-case 8-4-4-4-12 form, as QEMU's `backup` returns
/// and `query-backup` reports a job uuid (`uuid_str` in proxmox/pve-qemu's pve-backup.c).
pub fn uuid_string(uuid: &[u8; 16]) -> String {
    let hex = hex(uuid);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The blob buffer as QEMU's writer builds it: position 0 unused, each blob a little-endian
/// u16 length then the bytes, storage grown in 512-byte steps.
struct BlobTable {
    storage: Vec<u8>,
    pos: usize,
}

impl BlobTable {
    fn new() -> Self {
        BlobTable {
            storage: Vec::new(),
            pos: 1,
        }
    }

    fn add(&mut self, owner: &str, data: &[u8]) -> Result<u32, VmaError> {
        let len = u16::try_from(data.len())
            .ok()
            .filter(|&l| usize::from(l) <= MAX_BLOB_LEN)
            .ok_or_else(|| VmaError::BlobTooLarge {
                name: owner.to_owned(),
                len: data.len(),
            })?;
        let end = self.pos + data.len() + 2;
        if self.storage.len() < end {
            // QEMU grows by the blob's size rounded up to 512, not to the total: mirrored so
            // header_size is byte-identical.
            let grow = (data.len() + 2).div_ceil(512) * 512;
            self.storage.resize(self.storage.len() + grow, 0);
        }
        let start = self.pos;
        self.storage[start..start + 2].copy_from_slice(&len.to_le_bytes());
        self.storage[start + 2..end].copy_from_slice(data);
        self.pos = end;
        // Bounded by MAX_HEADER_SIZE checks long before u32 could overflow.
        Ok(start as u32)
    }

    fn add_str(&mut self, s: &str) -> Result<u32, VmaError> {
        let mut bytes = Vec::with_capacity(s.len() + 1);
        bytes.extend_from_slice(s.as_bytes());
        bytes.push(0);
        self.add(s, &bytes)
    }
}

fn put_u32(buf: &mut [u8], at: usize, value: u32) {
    buf[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

fn get_u32(buf: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&buf[at..at + 4]);
    u32::from_be_bytes(raw)
}

fn get_u64(buf: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&buf[at..at + 8]);
    u64::from_be_bytes(raw)
}

/// Builds the complete header, md5 included.
///
/// Blobs are allocated as QEMU does: config names and data in order, then device names in
/// dev id order (ids 1.. in the order of `devices`). Names must already be validated.
pub(crate) fn encode(
    uuid: &[u8; 16],
    ctime: i64,
    configs: &[(String, Vec<u8>)],
    devices: &[(String, u64)],
) -> Result<Vec<u8>, VmaError> {
    if configs.len() > MAX_CONFIGS {
        return Err(VmaError::TooManyConfigs(configs.len()));
    }
    let mut blobs = BlobTable::new();
    let mut config_ptrs = Vec::with_capacity(configs.len());
    for (name, data) in configs {
        config_ptrs.push((blobs.add_str(name)?, blobs.add(name, data)?));
    }
    let mut dev_ptrs = Vec::with_capacity(devices.len());
    for (name, size) in devices {
        dev_ptrs.push((blobs.add_str(name)?, *size));
    }

    let header_size = HEADER_FIXED_SIZE + blobs.storage.len();
    if header_size > MAX_HEADER_SIZE {
        return Err(VmaError::HeaderTooLarge {
            size: header_size as u64,
        });
    }
    let mut head = vec![0u8; header_size];
    head[off::MAGIC..off::MAGIC + 4].copy_from_slice(&MAGIC);
    put_u32(&mut head, off::VERSION, VERSION);
    head[off::UUID..off::UUID + 16].copy_from_slice(uuid);
    head[off::CTIME..off::CTIME + 8].copy_from_slice(&ctime.to_be_bytes());
    // Both below MAX_HEADER_SIZE, so they fit in u32.
    put_u32(&mut head, off::BLOB_BUFFER_OFFSET, HEADER_FIXED_SIZE as u32);
    put_u32(&mut head, off::BLOB_BUFFER_SIZE, blobs.pos as u32);
    put_u32(&mut head, off::HEADER_SIZE, header_size as u32);
    for (slot, (name_ptr, data_ptr)) in config_ptrs.into_iter().enumerate() {
        put_u32(&mut head, off::CONFIG_NAMES + 4 * slot, name_ptr);
        put_u32(&mut head, off::CONFIG_DATA + 4 * slot, data_ptr);
    }
    for (index, (name_ptr, size)) in dev_ptrs.into_iter().enumerate() {
        let at = off::DEV_INFO + (index + 1) * off::DEV_INFO_SIZE;
        put_u32(&mut head, at, name_ptr);
        head[at + 8..at + 16].copy_from_slice(&size.to_be_bytes());
    }
    head[HEADER_FIXED_SIZE..].copy_from_slice(&blobs.storage);
    let digest = Md5::digest(&head);
    head[off::MD5..off::MD5 + 16].copy_from_slice(&digest);
    Ok(head)
}

/// Checks the magic of the fixed header part and returns the total header size.
///
/// Sizes above QEMU's own limit are refused so a corrupt field cannot make us allocate
/// gigabytes before the checksum is known.
pub(crate) fn total_size(fixed: &[u8; HEADER_FIXED_SIZE]) -> Result<usize, VmaError> {
    if fixed[off::MAGIC..off::MAGIC + 4] != MAGIC {
        return Err(VmaError::BadMagic);
    }
    let size = get_u32(fixed, off::HEADER_SIZE);
    // u32 fits usize on every target std supports with files this large.
    let total = size as usize;
    if total <= HEADER_FIXED_SIZE {
        return Err(VmaError::BadHeaderSize(size));
    }
    if total > MAX_HEADER_SIZE {
        return Err(VmaError::HeaderTooLarge {
            size: u64::from(size),
        });
    }
    Ok(total)
}

/// Blobs found by scanning the buffer from position 1, as QEMU's reader does; only those
/// start positions resolve.
struct BlobIndex<'a> {
    buffer: &'a [u8],
    /// (position, data start, data end) sorted by position.
    entries: Vec<(u32, usize, usize)>,
}

impl<'a> BlobIndex<'a> {
    fn scan(buffer: &'a [u8]) -> Self {
        let mut entries = Vec::new();
        let mut pos = 1usize;
        while pos + 2 <= buffer.len() {
            let len = usize::from(u16::from_le_bytes([buffer[pos], buffer[pos + 1]]));
            let end = pos + 2 + len;
            if end <= buffer.len() {
                // Positions are below MAX_HEADER_SIZE.
                entries.push((pos as u32, pos + 2, end));
            }
            pos = end;
        }
        BlobIndex { buffer, entries }
    }

    fn blob(&self, ptr: u32) -> Option<&'a [u8]> {
        let i = self.entries.binary_search_by_key(&ptr, |e| e.0).ok()?;
        let (_, start, end) = self.entries[i];
        Some(&self.buffer[start..end])
    }

    /// A NUL-terminated string blob, cut at its first NUL like a C string.
    fn string(&self, ptr: u32) -> Option<&'a [u8]> {
        let blob = self.blob(ptr)?;
        if blob.last() != Some(&0) {
            return None;
        }
        let nul = blob.iter().position(|&b| b == 0).unwrap_or(blob.len());
        Some(&blob[..nul])
    }
}

fn utf8_name(raw: &[u8]) -> Result<String, VmaError> {
    String::from_utf8(raw.to_vec()).map_err(|_| VmaError::InvalidName {
        name: String::from_utf8_lossy(raw).into_owned(),
        reason: "not valid UTF-8",
    })
}

/// Verifies and decodes a complete header (`total_size` bytes), in QEMU's check order:
/// md5, version, blob buffer bounds, devices, config pointers.
pub(crate) fn decode(mut head: Vec<u8>) -> Result<ArchiveHeader, VmaError> {
    let header_size = head.len();
    let mut stored = [0u8; 16];
    stored.copy_from_slice(&head[off::MD5..off::MD5 + 16]);
    head[off::MD5..off::MD5 + 16].fill(0);
    if Md5::digest(&head)[..] != stored {
        return Err(VmaError::HeaderChecksum);
    }

    let version = get_u32(&head, off::VERSION);
    if version != VERSION {
        return Err(VmaError::BadVersion(version));
    }
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&head[off::UUID..off::UUID + 16]);
    // The field is a signed epoch value stored in 8 big-endian bytes.
    let ctime = get_u64(&head, off::CTIME) as i64;

    let blob_offset = get_u32(&head, off::BLOB_BUFFER_OFFSET);
    let blob_size = get_u32(&head, off::BLOB_BUFFER_SIZE);
    let blob_end = u64::from(blob_offset) + u64::from(blob_size);
    if (blob_offset as usize) < HEADER_FIXED_SIZE || blob_end > header_size as u64 {
        return Err(VmaError::BadBlobBuffer {
            offset: blob_offset,
            size: blob_size,
            header_size: header_size as u32,
        });
    }
    let blobs = BlobIndex::scan(&head[blob_offset as usize..blob_end as usize]);

    let mut devices = Vec::new();
    for dev_id in 1..=255u8 {
        let at = off::DEV_INFO + usize::from(dev_id) * off::DEV_INFO_SIZE;
        let size = get_u64(&head, at + 8);
        // QEMU ignores a slot whose size is 0 or whose name does not resolve.
        if let (true, Some(name)) = (size != 0, blobs.string(get_u32(&head, at))) {
            devices.push(DeviceInfo {
                dev_id,
                name: utf8_name(name)?,
                size,
            });
        }
    }
    if devices.is_empty() {
        return Err(VmaError::NoDevices);
    }

    let mut configs = Vec::new();
    for index in 0..MAX_CONFIGS {
        let name_ptr = get_u32(&head, off::CONFIG_NAMES + 4 * index);
        let data_ptr = get_u32(&head, off::CONFIG_DATA + 4 * index);
        if name_ptr == 0 || data_ptr == 0 {
            continue;
        }
        match (blobs.string(name_ptr), blobs.blob(data_ptr)) {
            (Some(name), Some(data)) => configs.push(ConfigBlob {
                name: utf8_name(name)?,
                data: data.to_vec(),
            }),
            _ => return Err(VmaError::InvalidDataPointers { index }),
        }
    }

    Ok(ArchiveHeader {
        uuid,
        ctime,
        configs,
        devices,
        header_size: header_size as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        encode(
            &[7; 16],
            1_700_000_000,
            &[("qemu-server.conf".into(), b"memory: 512\n".to_vec())],
            &[("drive-scsi0".into(), 1 << 20)],
        )
        .unwrap()
    }

    /// Known-answer check of the layout against the spec, byte by byte.
    #[test]
    fn header_layout_matches_spec() {
        let head = sample();
        assert_eq!(&head[0..4], &[0x56, 0x4d, 0x41, 0x00]);
        assert_eq!(&head[4..8], &[0, 0, 0, 1]);
        assert_eq!(&head[8..24], &[7; 16]);
        assert_eq!(&head[24..32], &1_700_000_000i64.to_be_bytes());
        // blob_buffer_offset 12288 = 0x3000, big endian.
        assert_eq!(&head[48..52], &[0, 0, 0x30, 0x00]);
        // Blobs: "qemu-server.conf\0" (17 bytes) at 1, the 12 data bytes at 1+2+17 = 20,
        // "drive-scsi0\0" (12 bytes) at 20+2+12 = 34; used = 34+2+12 = 48.
        assert_eq!(&head[52..56], &48u32.to_be_bytes());
        // One 512-byte step of blob storage.
        assert_eq!(&head[56..60], &(12288u32 + 512).to_be_bytes());
        assert_eq!(head.len(), 12800);
        assert_eq!(&head[2044..2048], &1u32.to_be_bytes());
        assert_eq!(&head[3068..3072], &20u32.to_be_bytes());
        // dev_info[1]: name pointer 34, size 1 MiB.
        assert_eq!(&head[4128..4132], &34u32.to_be_bytes());
        assert_eq!(&head[4136..4144], &(1u64 << 20).to_be_bytes());
        // The blob length is little endian: 17 = 0x11 0x00.
        assert_eq!(&head[12289..12291], &[0x11, 0x00]);
        assert_eq!(&head[12291..12308], b"qemu-server.conf\0");
        assert_eq!(&head[12308..12310], &[12, 0]);
        assert_eq!(&head[12322..12324], &[12, 0]);
        assert_eq!(&head[12324..12336], b"drive-scsi0\0");
        // md5 over the header with the md5 field zeroed.
        let mut zeroed = head.clone();
        zeroed[32..48].fill(0);
        assert_eq!(&head[32..48], &Md5::digest(&zeroed)[..]);
    }

    #[test]
    fn round_trip() {
        let decoded = decode(sample()).unwrap();
        assert_eq!(decoded.uuid, [7; 16]);
        assert_eq!(decoded.ctime, 1_700_000_000);
        assert_eq!(decoded.header_size, 12800);
        assert_eq!(
            decoded.configs,
            vec![ConfigBlob {
                name: "qemu-server.conf".into(),
                data: b"memory: 512\n".to_vec()
            }]
        );
        assert_eq!(
            decoded.devices,
            vec![DeviceInfo {
                dev_id: 1,
                name: "drive-scsi0".into(),
                size: 1 << 20
            }]
        );
    }

    #[test]
    fn uuid_forms() {
        let uuid: [u8; 16] = std::array::from_fn(|i| i as u8 * 0x11);
        assert_eq!(uuid_string(&uuid), "00112233-4455-6677-8899-aabbccddeeff");
        let decoded = decode(sample()).unwrap();
        assert_eq!(decoded.uuid_hex(), "07".repeat(16));
        assert_eq!(
            decoded.uuid_string(),
            "07070707-0707-0707-0707-070707070707"
        );
        assert_eq!(decoded.uuid_string().replace('-', ""), decoded.uuid_hex());
    }

    #[test]
    fn blob_storage_grows_like_qemu() {
        // A 600-byte blob after a small one grows the storage by 1024, not to 1024 total.
        let big = vec![1u8; 600];
        let head = encode(&[0; 16], 0, &[("a".into(), big)], &[("d".into(), 4096)]).unwrap();
        // "a\0" at 1 (4 bytes, storage 512), 600 bytes at 5 (needs 607 > 512: +1024),
        // "d\0" at 607.
        assert_eq!(head.len(), 12288 + 1536);
        assert_eq!(get_u32(&head, off::BLOB_BUFFER_SIZE), 611);
    }

    #[test]
    fn rejects_oversized_blob_and_header() {
        let err = encode(&[0; 16], 0, &[("a".into(), vec![0; 65536])], &[]).unwrap_err();
        assert!(
            matches!(err, VmaError::BlobTooLarge { len: 65536, .. }),
            "{err}"
        );
        let configs: Vec<_> = (0..9)
            .map(|i| (format!("c{i}"), vec![1u8; 60000]))
            .collect();
        let err = encode(&[0; 16], 0, &configs, &[]).unwrap_err();
        assert!(matches!(err, VmaError::HeaderTooLarge { .. }), "{err}");
    }

    #[test]
    fn dangling_config_pointer_is_rejected() {
        let mut head = sample();
        // Point the config data at the middle of a blob and fix the checksum.
        put_u32(&mut head, off::CONFIG_DATA, 5);
        head[off::MD5..off::MD5 + 16].fill(0);
        let digest = Md5::digest(&head);
        head[off::MD5..off::MD5 + 16].copy_from_slice(&digest);
        let err = decode(head).unwrap_err();
        assert!(
            matches!(err, VmaError::InvalidDataPointers { index: 0 }),
            "{err}"
        );
    }
}
