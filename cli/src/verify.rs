//! `verify`: checks a VMA archive and compares extracted devices with source images.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::Failure;

/// Opens the archive, decompressing through zstd, gzip or lzop when its magic says so.
fn open(path: &str) -> Result<(Box<dyn Read + Send>, Option<std::process::Child>), Failure> {
    let mut file: Box<dyn Read + Send> = if path == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(File::open(path).map_err(|e| Failure(format!("cannot open '{path}': {e}"), 1))?)
    };
    let mut magic = [0u8; 4];
    let n = read_full(&mut file, &mut magic)?;
    let decompressor = match magic {
        [0x28, 0xb5, 0x2f, 0xfd] => Some("zstd"),
        [0x1f, 0x8b, ..] => Some("gzip"),
        [0x89, b'L', b'Z', b'O'] => Some("lzop"),
        _ => None,
    };
    let head = std::io::Cursor::new(magic[..n].to_vec());
    let Some(tool) = decompressor else {
        return Ok((Box::new(head.chain(file)), None));
    };
    let mut child = Command::new(tool)
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Failure(format!("cannot run {tool}: {e}"), 1))?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut input = head.chain(file);
    // Feed the decompressor from a thread while we read its output.
    std::thread::spawn(move || std::io::copy(&mut input, &mut stdin));
    let stdout = child.stdout.take().expect("piped");
    Ok((Box::new(stdout), Some(child)))
}

fn read_full(r: &mut (dyn Read + Send), buf: &mut [u8]) -> Result<usize, Failure> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn sha256(path: &Path) -> Result<String, Failure> {
    let mut f = File::open(path).map_err(|e| Failure(format!("{}: {e}", path.display()), 1))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(format!("{:x}", h.finalize()))
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run(archive: &str, keep: Option<PathBuf>, compare: &[String]) -> Result<(), Failure> {
    let compare = compare
        .iter()
        .map(|spec| match spec.split_once('=') {
            Some((name, image)) => Ok((name.to_string(), PathBuf::from(image))),
            None => Err(Failure(
                format!("--compare wants NAME=IMAGE, got '{spec}'"),
                2,
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (input, child) = open(archive)?;
    let scratch =
        Scratch(std::env::temp_dir().join(format!("vzdump-qemu-verify-{}", std::process::id())));
    let target = keep.as_deref().unwrap_or(&scratch.0);
    let info = if compare.is_empty() && keep.is_none() {
        vma::verify(input)
    } else {
        vma::extract_to_dir(input, target)
    }
    .map_err(|e| {
        Failure(
            format!("archive '{archive}' is not a valid VMA stream: {e}"),
            1,
        )
    })?;
    if let Some(mut c) = child {
        let status = c.wait()?;
        if !status.success() {
            return Err(Failure(
                format!("decompressing '{archive}' failed: {status}"),
                1,
            ));
        }
    }
    println!(
        "archive OK: uuid {}, {} config(s), {} device(s), {} extents, {} bytes of VMA",
        info.header.uuid_hex(),
        info.header.configs.len(),
        info.header.devices.len(),
        info.extents,
        info.bytes
    );
    for dev in &info.header.devices {
        println!("  device {} ({}): {} bytes", dev.dev_id, dev.name, dev.size);
    }
    let mut mismatches = 0;
    for (name, image) in compare {
        let extracted = target.join(format!("disk-{name}.raw"));
        if !extracted.exists() {
            return Err(Failure(format!("device '{name}' is not in the archive"), 1));
        }
        let (got, want) = (sha256(&extracted)?, sha256(&image)?);
        let len_ok = std::fs::metadata(&extracted)?.len() == std::fs::metadata(&image)?.len();
        if got == want && len_ok {
            println!("  {name}: identical to {} (sha256 {want})", image.display());
        } else {
            println!(
                "  {name}: DIFFERS from {} (sha256 {got} != {want})",
                image.display()
            );
            mismatches += 1;
        }
    }
    if mismatches > 0 {
        return Err(Failure(
            format!("{mismatches} device(s) differ from their source"),
            1,
        ));
    }
    Ok(())
}
