//! Block devices: raw image files and generated data.
//!
//! A generated device is a function of its name and size only, so tests can reproduce it
//! (`--dump-gen-disk`). Its layout, in 4 MiB chunks (the PBS chunk size): chunk `i % 4 == 0`
//! is data with about one 4 KiB block in eight left zero, `i % 4 == 2` has data only in
//! every fourth 64 KiB cluster (so VMA sees all-zero clusters), the others are holes. Each
//! data block starts with a non-zero byte, so "all zero" is known per block without
//! generating it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::args::DiskSpec;

/// The 4 KiB block the zero tests of VMA and this layout work in.
pub const BLOCK: u64 = 4096;
/// PBS fixed chunk size.
pub const PBS_CHUNK: u64 = 4 << 20;

/// One block device.
#[derive(Debug)]
pub struct Disk {
    /// Device name, e.g. `drive-scsi0`.
    pub name: String,
    /// Size in bytes (> 0).
    pub size: u64,
    source: Source,
}

#[derive(Debug)]
enum Source {
    File(File),
    Generated(Pattern),
}

impl Disk {
    /// Opens an image file or sets up a generator.
    pub fn open(spec: &DiskSpec) -> Result<Disk, String> {
        match spec {
            DiskSpec::File { name, path } => {
                let file = File::open(path)
                    .map_err(|e| format!("cannot open disk '{}': {e}", path.display()))?;
                let size = file
                    .metadata()
                    .map_err(|e| format!("cannot stat disk '{}': {e}", path.display()))?
                    .len();
                if size == 0 {
                    return Err(format!("disk '{}' is empty", path.display()));
                }
                Ok(Disk {
                    name: name.clone(),
                    size,
                    source: Source::File(file),
                })
            }
            DiskSpec::Generated { name, size } => Ok(Disk::generated(name, *size)),
        }
    }

    /// A generated device.
    pub fn generated(name: &str, size: u64) -> Disk {
        Disk {
            name: name.to_string(),
            size,
            source: Source::Generated(Pattern::new(name)),
        }
    }

    /// Reads `buf.len()` bytes at `offset`; bytes past the end (or past a file that shrank)
    /// read as zero.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        match &self.source {
            Source::File(f) => {
                let mut done = 0;
                while done < buf.len() {
                    match f.read_at(&mut buf[done..], offset + done as u64) {
                        Ok(0) => break,
                        Ok(n) => done += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                buf[done..].fill(0);
                Ok(())
            }
            Source::Generated(p) => {
                p.read_at(offset, buf);
                Ok(())
            }
        }
    }

    /// Whether the range is known to be zero without reading it (holes of generated
    /// devices; QEMU likewise skips reading what the block layer reports as zero).
    pub fn known_zero(&self, offset: u64, len: u64) -> bool {
        match &self.source {
            Source::Generated(_) => self.is_zero(offset, len).unwrap_or(false),
            Source::File(_) => false,
        }
    }

    /// Whether `len` bytes at `offset` are all zero.
    pub fn is_zero(&self, offset: u64, len: u64) -> io::Result<bool> {
        match &self.source {
            Source::Generated(p) => {
                let first = offset / BLOCK;
                let last = (offset + len).div_ceil(BLOCK);
                Ok((first..last).all(|b| p.block_is_zero(b)))
            }
            Source::File(_) => {
                let mut buf = vec![0u8; 65536];
                let mut pos = offset;
                while pos < offset + len {
                    let n = (offset + len - pos).min(buf.len() as u64) as usize;
                    self.read_at(pos, &mut buf[..n])?;
                    if buf[..n].iter().any(|&b| b != 0) {
                        return Ok(false);
                    }
                    pos += n as u64;
                }
                Ok(true)
            }
        }
    }
}

/// Writes the data of a generated device to `path` (holes stay holes).
pub fn dump_generated(name: &str, size: u64, path: &Path) -> io::Result<()> {
    let disk = Disk::generated(name, size);
    let file = File::create(path)?;
    file.set_len(size)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0;
    while pos < size {
        let n = (size - pos).min(buf.len() as u64) as usize;
        if !disk.is_zero(pos, n as u64)? {
            disk.read_at(pos, &mut buf[..n])?;
            file.write_all_at(&buf[..n], pos)?;
        }
        pos += n as u64;
    }
    file.sync_all()
}

/// The generator of one device.
#[derive(Debug, Clone, Copy)]
struct Pattern {
    seed: u64,
}

impl Pattern {
    fn new(name: &str) -> Pattern {
        // FNV-1a of the name: different devices get different data.
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in name.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        Pattern { seed: h }
    }

    fn block_is_zero(&self, block: u64) -> bool {
        let per_chunk = PBS_CHUNK / BLOCK;
        match (block / per_chunk) % 4 {
            0 => mix(self.seed ^ block.wrapping_mul(0x9e37_79b9)) % 8 == 0,
            2 => (block * BLOCK / 65536) % 4 != 0,
            _ => true,
        }
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) {
        let mut pos = 0usize;
        while pos < buf.len() {
            let abs = offset + pos as u64;
            let block = abs / BLOCK;
            let in_block = (abs % BLOCK) as usize;
            let n = (BLOCK as usize - in_block).min(buf.len() - pos);
            let out = &mut buf[pos..pos + n];
            if self.block_is_zero(block) {
                out.fill(0);
            } else {
                let mut data = [0u8; BLOCK as usize];
                let first_word = block * BLOCK / 8;
                for (w, word) in data.chunks_exact_mut(8).enumerate() {
                    let v = mix(self.seed.wrapping_add(first_word + w as u64));
                    word.copy_from_slice(&v.to_le_bytes());
                }
                data[0] |= 1;
                out.copy_from_slice(&data[in_block..in_block + n]);
            }
            pos += n;
        }
    }
}

/// splitmix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_zero_map_matches_data() {
        let d = Disk::generated("drive-scsi0", 16 << 20);
        let mut buf = vec![0u8; BLOCK as usize];
        let (mut zero, mut data) = (0, 0);
        for b in 0..d.size / BLOCK {
            d.read_at(b * BLOCK, &mut buf).unwrap();
            let all_zero = buf.iter().all(|&x| x == 0);
            assert_eq!(all_zero, d.is_zero(b * BLOCK, BLOCK).unwrap(), "block {b}");
            if all_zero {
                zero += 1
            } else {
                data += 1
            }
        }
        assert!(zero > 0 && data > 0);
        // Holes: chunk 1 and 3 entirely zero.
        assert!(d.is_zero(PBS_CHUNK, PBS_CHUNK).unwrap());
        assert!(!d.is_zero(0, PBS_CHUNK).unwrap());
    }

    #[test]
    fn unaligned_reads_agree_and_names_differ() {
        let d = Disk::generated("a", 1 << 20);
        let mut whole = vec![0u8; 1 << 20];
        d.read_at(0, &mut whole).unwrap();
        let mut part = vec![0u8; 10000];
        d.read_at(4093, &mut part).unwrap();
        assert_eq!(part, whole[4093..14093]);
        let mut other = vec![0u8; 1 << 20];
        Disk::generated("b", 1 << 20)
            .read_at(0, &mut other)
            .unwrap();
        assert_ne!(whole, other);
    }

    #[test]
    fn reads_past_the_end_of_a_file_are_zero() {
        let path = std::env::temp_dir().join(format!("pve-qmp-sim-disk-{}", std::process::id()));
        std::fs::write(&path, b"abc").unwrap();
        let d = Disk::open(&DiskSpec::File {
            name: "d".into(),
            path: path.clone(),
        })
        .unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(d.size, 3);
        let mut buf = [9u8; 6];
        d.read_at(1, &mut buf).unwrap();
        assert_eq!(buf, [b'b', b'c', 0, 0, 0, 0]);
        assert!(!d.is_zero(0, 3).unwrap());
    }
}
