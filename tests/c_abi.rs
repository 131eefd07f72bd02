//! Compiles `tests/c/hash_abi_test.c` with the system C compiler against the committed
//! `include/phsync.h`, links it to the cdylib and runs it on the published vectors.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::vectors::*;

/// target/<profile>/, where cargo puts `libphsync.so` next to the binary.
fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_phsync"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn write_inputs(dir: &Path) -> (PathBuf, PathBuf) {
    let mut vectors = String::new();
    for (pw, nt) in NT_VECTORS {
        vectors += &format!("nt\t{pw}\t{nt}\n");
    }
    for (pw, salt, iterations, digest) in DIGEST_VECTORS {
        vectors += &format!("digest\t{pw}\t{salt}\t{iterations}\t{digest}\n");
    }
    for (_, key) in CONTROL_WRONG_KEYS {
        vectors += &format!("wrong\t{CONTROL_PASSWORD}\t{}\n", control_digest(key));
    }
    let malformed: String = MALFORMED_DIGESTS
        .iter()
        .filter(|d| !d.contains('\n'))
        .map(|d| format!("{d}\n"))
        .collect();
    let v = dir.join("vectors.tsv");
    let m = dir.join("malformed.txt");
    std::fs::write(&v, vectors).unwrap();
    std::fs::write(&m, malformed).unwrap();
    (v, m)
}

#[test]
fn c_program_checks_vectors_and_error_codes() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let lib_dir = target_dir();
    assert!(
        lib_dir.join("libphsync.so").exists() || lib_dir.join("libphsync.dylib").exists(),
        "cdylib not found in {} (build it first: cargo build --lib; scripts/test does)",
        lib_dir.display()
    );
    let work = std::env::temp_dir().join(format!("phsync-c-abi-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let exe = work.join("hash_abi_test");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(manifest.join("tests/c/hash_abi_test.c"))
        .arg("-I")
        .arg(manifest.join("include"))
        .arg("-L")
        .arg(&lib_dir)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-lphsync")
        .output()
        .unwrap_or_else(|e| panic!("cannot run C compiler {cc}: {e}"));
    assert!(
        out.status.success(),
        "C compile failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (vectors, malformed) = write_inputs(&work);
    let run = Command::new(&exe)
        .arg(vectors)
        .arg(malformed)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!("{stdout}{stderr}");
    assert!(run.status.success(), "C test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    std::fs::remove_dir_all(&work).ok();
}
