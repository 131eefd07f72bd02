//! Compiles `tests/c/hash_abi_test.c` with the system C compiler against the committed
//! `include/phsync.h`, links it to the cdylib and runs it on the published vectors. Also the
//! engine exports that need no domain controller (the event log), from Rust and the CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

use phsync_testkit::vectors::*;

/// target/<profile>/, where cargo puts `libphsync.so` next to the binary.
fn target_dir() -> PathBuf {
    phsync_testkit::target_dir()
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
        .arg(phsync_testkit::repo_root().join("include"))
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

/// An engine config that only names a state directory (`state`), and that directory's event
/// log by hand: events.jsonl.2 (oldest), events.jsonl.1, events.jsonl, with a line that is
/// not an event and an event without data.
fn write_event_log(dir: &Path) -> PathBuf {
    let config = dir.join("phsync.toml");
    std::fs::write(
        &config,
        "[source]\nldap_url = \"ldaps://127.0.0.1\"\nca_file = \"ca.pem\"\nrealm = \"PHS.TEST\"\nnetbios_domain = \"PHS\"\nusername = \"svc\"\npassword_file = \"svc.pw\"\n\n[cloud]\ntenant = \"tenant.db\"\n\n[state]\ndir = \"state\"\n",
    )
    .unwrap();
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let event = |second: u32, id: u16, level: &str, message: &str, data: &str| {
        let data = if data.is_empty() {
            String::new()
        } else {
            format!(",\"data\":{data}")
        };
        format!("{{\"at\":\"2025-03-01T10:00:{second:02}.5Z\",\"event_id\":{id},\"level\":\"{level}\",\"message\":\"{message}\"{data}}}\n")
    };
    std::fs::write(
        state.join("events.jsonl.2"),
        event(1, 617, "info", "e1", "") + &event(2, 650, "info", "e2", r#"{"domain":"PHS"}"#),
    )
    .unwrap();
    std::fs::write(
        state.join("events.jsonl.1"),
        event(3, 611, "error", "e3", r#"{"domain":"PHS"}"#)
            + "not an event {\n"
            + &event(4, 664, "warning", "e4", r#"{"user":"u"}"#),
    )
    .unwrap();
    std::fs::write(
        state.join("events.jsonl"),
        event(5, 651, "info", "e5", "")
            + "\n"
            + &event(6, 611, "error", "e6", "")
            + r#"{"at":"2025-03"#,
    )
    .unwrap();
    config
}

#[test]
fn the_event_log_is_read_and_filtered_without_an_engine() {
    use std::ffi::{c_char, CStr, CString};
    use std::ptr;

    use phsync::*;

    unsafe fn events(
        config: &CStr,
        ids: Option<&[u16]>,
        after_unix_ms: i64,
        newest: usize,
    ) -> Vec<String> {
        let (p, n) = ids.map_or((ptr::null(), 0), |i| (i.as_ptr(), i.len()));
        let mut json: *mut c_char = ptr::null_mut();
        let status = phs_events(config.as_ptr(), p, n, after_unix_ms, newest, &mut json);
        assert_eq!(status, PHS_OK);
        let v: serde_json::Value =
            serde_json::from_str(CStr::from_ptr(json).to_str().unwrap()).unwrap();
        phs_string_free(json);
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_string())
            .collect()
    }

    let dir = tempfile::tempdir().unwrap();
    let config = write_event_log(dir.path());
    let c = CString::new(config.to_str().unwrap()).unwrap();
    // 2025-03-01T10:00:03.5Z, the time of e3.
    let e3_ms = 1_740_823_203_500;
    unsafe {
        // All of them, oldest first, across the rotated files; the broken lines are skipped.
        assert_eq!(
            events(&c, None, i64::MIN, 0),
            ["e1", "e2", "e3", "e4", "e5", "e6"]
        );
        assert_eq!(
            events(&c, Some(&[611, 664]), i64::MIN, 0),
            ["e3", "e4", "e6"]
        );
        // Strictly after.
        assert_eq!(events(&c, None, e3_ms, 0), ["e4", "e5", "e6"]);
        assert_eq!(events(&c, None, e3_ms - 1, 0), ["e3", "e4", "e5", "e6"]);
        assert_eq!(events(&c, None, i64::MAX, 0), Vec::<String>::new());
        // The newest N, after the other filters.
        assert_eq!(events(&c, None, i64::MIN, 2), ["e5", "e6"]);
        assert_eq!(events(&c, Some(&[611]), i64::MIN, 1), ["e6"]);
        assert_eq!(events(&c, Some(&[611]), e3_ms - 1, 10), ["e3", "e6"]);
        assert_eq!(events(&c, Some(&[999]), i64::MIN, 0), Vec::<String>::new());
        // ids NULL (or empty) is any id, whatever the length says.
        let mut json = ptr::null_mut();
        assert_eq!(
            phs_events(c.as_ptr(), ptr::null(), 3, i64::MIN, 1, &mut json),
            PHS_OK
        );
        let one: serde_json::Value =
            serde_json::from_str(CStr::from_ptr(json).to_str().unwrap()).unwrap();
        phs_string_free(json);
        // The stored fields; data null when the event had none.
        assert_eq!(
            one,
            serde_json::json!([{
                "at": "2025-03-01T10:00:06.5Z", "event_id": 611, "level": "error",
                "message": "e6", "data": null
            }])
        );

        // No log yet, no state directory, or no [state] section: no events.
        std::fs::remove_dir_all(dir.path().join("state")).unwrap();
        assert_eq!(events(&c, None, i64::MIN, 0), Vec::<String>::new());
        let text = std::fs::read_to_string(&config).unwrap();
        let stateless = text.split("[state]").next().unwrap().to_string();
        std::fs::write(&config, stateless).unwrap();
        assert_eq!(events(&c, None, i64::MIN, 0), Vec::<String>::new());

        // Errors: only arguments and the config.
        let missing = CString::new(dir.path().join("none.toml").to_str().unwrap()).unwrap();
        assert_eq!(
            phs_events(missing.as_ptr(), ptr::null(), 0, i64::MIN, 0, &mut json),
            PHS_E_CONFIG
        );
        assert_eq!(
            phs_events(ptr::null(), ptr::null(), 0, i64::MIN, 0, &mut json),
            PHS_E_NULL_ARGUMENT
        );
        assert_eq!(
            phs_events(c.as_ptr(), ptr::null(), 0, i64::MIN, 0, ptr::null_mut()),
            PHS_E_NULL_ARGUMENT
        );
    }

    // The CLI reads the same log with the same filters.
    let config = write_event_log(dir.path());
    let phsync = |args: &[&str]| {
        let out = Command::new(phsync_testkit::phsync_bin())
            .arg("events")
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&phsync(&[
        "--json",
        "--id",
        "611",
        "--id",
        "664",
        "--after",
        "2025-03-01T10:00:03.5Z",
        "--newest",
        "5",
    ]))
    .unwrap();
    let messages: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["e4", "e6"]);
    let text = phsync(&["--newest", "2"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[1].contains("611") && lines[1].contains("error") && lines[1].ends_with("e6"),
        "{text}"
    );
}
