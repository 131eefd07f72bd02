//! Generates the C header from this crate's `src` with cbindgen into OUT_DIR. The committed
//! `include/phsync.h` is compared against it by `tests/it/header.rs`; set
//! `PHSYNC_BLESS_HEADER=1` to overwrite the committed copy.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=PHSYNC_BLESS_HEADER");

    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    let builder = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/lib.rs"));
    let bindings = builder
        .generate()
        .expect("cbindgen could not generate the C header");
    let generated = out_dir.join("phsync.h");
    bindings.write_to_file(&generated);

    if std::env::var_os("PHSYNC_BLESS_HEADER").is_some_and(|v| v == "1") {
        std::fs::copy(&generated, crate_dir.join("../../include/phsync.h"))
            .expect("could not write include/phsync.h");
    }
}
