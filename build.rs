//! Generates include/vzdump_qemu.h with cbindgen and gives the cdylib its soname.
//!
//! The header is written to OUT_DIR first and copied to include/ only when its bytes
//! changed, so a build does not touch the tree needlessly. Set VZDUMP_QEMU_SKIP_HEADER=1
//! to use the committed header as is (offline or read-only builds).

use std::path::PathBuf;

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libvzdump_qemu.so.0");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=VZDUMP_QEMU_SKIP_HEADER");
    if std::env::var_os("VZDUMP_QEMU_SKIP_HEADER").is_some() {
        return;
    }
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("vzdump_qemu.h");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable");
    // Parse only the C API (src/ffi/mod.rs and the modules it declares): no
    // `cargo metadata` run, no network, no lock file.
    let builder = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/ffi/mod.rs"));
    let bindings = match builder.generate() {
        Ok(b) => b,
        // A syntax error is better reported by rustc itself.
        Err(cbindgen::Error::ParseSyntaxError { .. }) => return,
        Err(e) => panic!("cbindgen failed: {e}"),
    };
    bindings.write_to_file(&out);
    let header = crate_dir.join("include/vzdump_qemu.h");
    let new = std::fs::read(&out).unwrap();
    if std::fs::read(&header).ok().as_deref() != Some(&new[..]) {
        std::fs::create_dir_all(header.parent().unwrap()).unwrap();
        std::fs::write(&header, new).unwrap();
    }
}
