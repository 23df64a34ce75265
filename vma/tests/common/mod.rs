//! Test support: archive building, raw stream surgery, image reconstruction.
#![allow(dead_code)] // each test binary uses a different part

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::rc::Rc;

use md5::{Digest, Md5};
use vma::{read_archive, ArchiveInfo, VmaError, Writer};

pub const UUID: [u8; 16] = *b"0123456789abcdef";
pub const CTIME: i64 = 1_700_000_000;
pub const BLOCK: usize = 4096;
pub const CLUSTER: usize = 65536;

/// Deterministic bytes that are never zero.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state as u8) | 1
        })
        .collect()
}

/// A device image: `size` bytes, zero except for `data` spans at given offsets.
pub fn image(size: usize, spans: &[(usize, usize)]) -> Vec<u8> {
    let mut img = vec![0u8; size];
    for (i, &(offset, len)) in spans.iter().enumerate() {
        img[offset..offset + len].copy_from_slice(&pattern(i as u64 + 1, len));
    }
    img
}

/// The bytes of cluster `c` of `img`: a full 65536 bytes, zero-padded past the end.
pub fn padded_cluster(img: &[u8], c: u32) -> Vec<u8> {
    let start = c as usize * CLUSTER;
    let mut buf = vec![0u8; CLUSTER];
    let end = img.len().min(start + CLUSTER);
    buf[..end - start].copy_from_slice(&img[start..end]);
    buf
}

pub fn clusters_of(img: &[u8]) -> u32 {
    img.len().div_ceil(CLUSTER) as u32
}

/// A writer into memory with [`UUID`], [`CTIME`], no configs and `devices` (dev ids 1..).
pub fn writer(devices: &[(&str, u64)]) -> Writer<Vec<u8>> {
    let devices = devices
        .iter()
        .map(|&(name, size)| (name.to_string(), size))
        .collect();
    Writer::new(Vec::new(), UUID, CTIME, vec![], devices).unwrap()
}

/// Writes `images` (dev ids 1..) cluster by cluster in `order` ((dev_id, cluster) pairs;
/// all clusters in device order when `None`).
pub fn build(
    configs: Vec<(String, Vec<u8>)>,
    images: &[(&str, &[u8])],
    order: Option<Vec<(u8, u32)>>,
) -> Vec<u8> {
    let devices = images
        .iter()
        .map(|(name, img)| (name.to_string(), img.len() as u64))
        .collect();
    let mut writer = Writer::new(Vec::new(), UUID, CTIME, configs, devices).unwrap();
    let order = order.unwrap_or_else(|| {
        images
            .iter()
            .enumerate()
            .flat_map(|(i, (_, img))| (0..clusters_of(img)).map(move |c| (i as u8 + 1, c)))
            .collect()
    });
    for (dev_id, c) in order {
        let img = images[usize::from(dev_id) - 1].1;
        writer
            .write_cluster(dev_id, c, &padded_cluster(img, c))
            .unwrap();
    }
    writer.finish().unwrap()
}

/// Reads `stream`, rebuilding every device image from the data callbacks.
pub fn rebuild(stream: &[u8]) -> Result<(ArchiveInfo, Vec<Vec<u8>>), VmaError> {
    let mut images: Vec<Vec<u8>> = Vec::new();
    let info = read_archive(stream, |dev_id, offset, data| {
        let index = usize::from(dev_id) - 1;
        if images.len() <= index {
            images.resize(index + 1, Vec::new());
        }
        let img = &mut images[index];
        let end = offset as usize + data.len();
        if img.len() < end {
            img.resize(end, 0);
        }
        img[offset as usize..end].copy_from_slice(data);
        Ok(())
    })?;
    // Trailing zeros are never passed: size the images from the header.
    images.resize(info.header.devices.len(), Vec::new());
    for (img, dev) in images.iter_mut().zip(&info.header.devices) {
        img.resize(dev.size as usize, 0);
    }
    Ok((info, images))
}

/// Asserts that the error `err` matches `pattern` (a guard allowed), with the error as the
/// message; evaluates to the error.
#[allow(unused_macros)] // each test binary uses a different part
macro_rules! assert_err {
    ($err:expr, $pattern:pat $(if $guard:expr)?) => {{
        let err = $err;
        assert!(matches!(&err, $pattern $(if $guard)?), "{err}");
        err
    }};
}
#[allow(unused_imports)] // each test binary uses a different part
pub(crate) use assert_err;

pub fn be_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(buf[at..at + 4].try_into().unwrap())
}

pub fn header_size(stream: &[u8]) -> usize {
    be_u32(stream, 56) as usize
}

/// Byte offsets of the extents of a well-formed stream.
pub fn extent_offsets(stream: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut pos = header_size(stream);
    while pos < stream.len() {
        offsets.push(pos);
        let blocks = u16::from_be_bytes([stream[pos + 6], stream[pos + 7]]) as usize;
        pos += 512 + blocks * BLOCK;
    }
    offsets
}

/// Recomputes the md5 of the file header after a deliberate change.
pub fn reseal_header(stream: &mut [u8]) {
    let size = header_size(stream);
    stream[32..48].fill(0);
    let digest = Md5::digest(&stream[..size]);
    stream[32..48].copy_from_slice(&digest);
}

/// Recomputes the md5 of the extent header at `at` after a deliberate change.
pub fn reseal_extent(stream: &mut [u8], at: usize) {
    stream[at + 24..at + 40].fill(0);
    let digest = Md5::digest(&stream[at..at + 512]);
    stream[at + 24..at + 40].copy_from_slice(&digest);
}

/// Raw blockinfo `slot` of the extent at `at`.
pub fn slot(stream: &[u8], at: usize, slot: usize) -> u64 {
    let p = at + 40 + 8 * slot;
    u64::from_be_bytes(stream[p..p + 8].try_into().unwrap())
}

pub fn set_slot(stream: &mut [u8], at: usize, slot: usize, value: u64) {
    let p = at + 40 + 8 * slot;
    stream[p..p + 8].copy_from_slice(&value.to_be_bytes());
}

/// Replaces the blob bytes `from` with `to` (same length) in the header and reseals it.
pub fn patch_header_blob(stream: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let size = header_size(stream);
    let pos = stream[12288..size]
        .windows(from.len())
        .position(|w| w == from)
        .expect("blob present")
        + 12288;
    stream[pos..pos + to.len()].copy_from_slice(to);
    reseal_header(stream);
}

/// A `Read` that hands out at most `chunk` bytes per call and is interrupted now and then,
/// like a pipe under load.
pub struct Trickle<'a> {
    pub data: &'a [u8],
    pub chunk: usize,
    pub calls: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls % 7 == 0 {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = buf.len().min(self.chunk).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// A `Write` whose bytes stay visible to the test while the writer owns it.
#[derive(Clone, Default)]
pub struct Shared(pub Rc<RefCell<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A `Write` that fails after `budget` bytes.
pub struct Failing {
    pub budget: usize,
}

impl Write for Failing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.budget == 0 {
            return Err(io::Error::other("disk full"));
        }
        let n = buf.len().min(self.budget);
        self.budget -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
