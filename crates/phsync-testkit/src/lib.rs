//! Test support shared by the phsync crates' integration tests: the AD lab as the tests see
//! it, throwaway tenants, the HTTPS service as a child process, and the published vectors.
//! Not shipped: only dev-dependencies use it.

pub mod ad;
pub mod audit_fixture;
pub mod lab;
pub mod leaked;
pub mod openapi;
pub mod service;
pub mod sync_fixture;
pub mod tenant;
pub mod vectors;

use std::path::PathBuf;

/// The repository's root (scripts/, include/).
pub fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// `target/<profile>/`, where cargo puts the `phsync` binary and `libphsync.so`: the test
/// binary runs from `target/<profile>/deps/`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("target/<profile>/deps");
    deps.parent().expect("target/<profile>").to_path_buf()
}

/// The `phsync` CLI binary of this build. `cargo test --workspace` (as scripts/test runs it)
/// builds it before any test runs; a lone `cargo test -p <crate>` may need `cargo build --bin
/// phsync` first.
pub fn phsync_bin() -> PathBuf {
    let bin = target_dir().join(format!("phsync{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} not found: build it first (cargo build --bin phsync; scripts/test does)",
        bin.display()
    );
    bin
}
