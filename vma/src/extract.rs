//! `vma extract`: configs and sparse raw disk images into a new directory.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::VmaError;
use crate::names::check_file_name;
use crate::reader::{ArchiveInfo, Reader};

/// An output file of one device.
struct Target {
    file: File,
    path: PathBuf,
    /// Where the file goes once the archive verified; `None` keeps `path`.
    rename_to: Option<PathBuf>,
}

fn at_path(path: &Path) -> impl FnOnce(io::Error) -> VmaError + '_ {
    move |source| VmaError::Extract {
        path: path.to_owned(),
        source,
    }
}

/// Extracts an archive into `dir`, which must not exist yet (it is created, as `vma
/// extract` does).
///
/// Each config blob becomes `<dir>/<name>`; each disk is written to
/// `<dir>/tmp-disk-<name>.raw`, sized to the device with zero blocks left as holes, and
/// renamed to `disk-<name>.raw` once the whole archive verified; a `vmstate` stream goes to
/// `vmstate.bin`. Names that are not plain file names are refused before anything is
/// written. On error the directory keeps what was written so far.
pub fn extract_to_dir<R: Read>(input: R, dir: impl AsRef<Path>) -> Result<ArchiveInfo, VmaError> {
    let dir = dir.as_ref();
    let reader = Reader::new(input)?;
    let header = reader.header();
    for name in header
        .configs
        .iter()
        .map(|c| &c.name)
        .chain(header.devices.iter().map(|d| &d.name))
    {
        check_file_name(name)?;
    }

    fs::create_dir(dir).map_err(at_path(dir))?;
    for config in &header.configs {
        let path = dir.join(&config.name);
        fs::write(&path, &config.data).map_err(at_path(&path))?;
    }

    let mut targets = Vec::with_capacity(header.devices.len());
    let mut target_of = [None; 256];
    for dev in &header.devices {
        let (path, rename_to) = if dev.is_vmstate() {
            (dir.join("vmstate.bin"), None)
        } else {
            (
                dir.join(format!("tmp-disk-{}.raw", dev.name)),
                Some(dir.join(format!("disk-{}.raw", dev.name))),
            )
        };
        let file = File::create(&path).map_err(at_path(&path))?;
        if !dev.is_vmstate() {
            // Sizing first leaves every block that is never written as a hole.
            file.set_len(dev.size).map_err(at_path(&path))?;
        }
        target_of[usize::from(dev.dev_id)] = Some(targets.len());
        targets.push(Target {
            file,
            path,
            rename_to,
        });
    }

    let info = reader.read_to_end(|dev_id, offset, data| {
        // The reader only passes dev ids of the header's devices.
        let index = target_of[usize::from(dev_id)]
            .ok_or_else(|| io::Error::other(format!("no target for dev id {dev_id}")))?;
        let file = &mut targets[index].file;
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(data)
    })?;

    for target in targets {
        target.file.sync_all().map_err(at_path(&target.path))?;
        if let Some(final_path) = &target.rename_to {
            fs::rename(&target.path, final_path).map_err(at_path(final_path))?;
        }
    }
    Ok(info)
}
