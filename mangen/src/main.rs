//! `vzdump-qemu-mangen DIR`: writes the man pages of `vzdump-qemu` (one per command, as
//! `vzdump-qemu-backup.1`, ...) and `pve-qmp-sim` into DIR, from the same clap definitions
//! that make their `--help` (the tools' `cli.rs`, included here). Run by `make man` and the
//! Debian build.

use std::path::PathBuf;
use std::process::ExitCode;

#[allow(dead_code)]
#[path = "../../cli/src/cli.rs"]
mod tool;

#[allow(dead_code)]
#[path = "../../sim/src/cli.rs"]
mod sim;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: vzdump-qemu-mangen DIR");
        return ExitCode::from(2);
    };
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| clap_mangen::generate_to(tool::command(), &dir))
        .and_then(|()| clap_mangen::generate_to(sim::command(), &dir));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "vzdump-qemu-mangen: writing man pages to {} failed: {e}",
                dir.display()
            );
            ExitCode::from(1)
        }
    }
}
