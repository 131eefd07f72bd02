//! Generates the C header from `src/ffi` with cbindgen into OUT_DIR. The committed
//! `include/phsync.h` is compared against it by `tests/header.rs`; set
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
    // Only src/ffi is the C API: parsing just those files keeps every other module's public
    // constants out of the header without an exclude list to maintain.
    let mut builder = cbindgen::Builder::new().with_config(config);
    let mut ffi_files: Vec<PathBuf> = std::fs::read_dir(crate_dir.join("src/ffi"))
        .expect("src/ffi exists")
        .map(|e| e.expect("readable src/ffi").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    ffi_files.sort();
    for file in ffi_files {
        builder = builder.with_src(file);
    }
    let bindings = builder
        .generate()
        .expect("cbindgen could not generate the C header");
    let generated = out_dir.join("phsync.h");
    bindings.write_to_file(&generated);

    if std::env::var_os("PHSYNC_BLESS_HEADER").is_some_and(|v| v == "1") {
        std::fs::copy(&generated, crate_dir.join("include/phsync.h"))
            .expect("could not write include/phsync.h");
    }
}
