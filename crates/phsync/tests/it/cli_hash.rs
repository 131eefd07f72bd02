//! `phsync hash ...` end to end: vectors, exit codes, and error messages.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use phsync_testkit::vectors::*;

fn phsync(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_phsync"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The child may exit (usage error) before reading stdin: a broken pipe is not a failure.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn nt_vectors() {
    for (pw, nt) in NT_VECTORS {
        let o = phsync(&["hash", "nt"], format!("{pw}\n").as_bytes());
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o), format!("{nt}\n"));
        // CRLF line endings and a missing final newline are both fine.
        let o = phsync(&["hash", "nt"], format!("{pw}\r\n").as_bytes());
        assert_eq!(stdout(&o), format!("{nt}\n"));
        if !pw.is_empty() {
            let o = phsync(&["hash", "nt"], pw.as_bytes());
            assert_eq!(stdout(&o), format!("{nt}\n"));
        }
    }
}

#[test]
fn only_the_first_line_is_the_password() {
    let o = phsync(&["hash", "nt"], b"password\nsecond line\n");
    assert_eq!(stdout(&o), "8846F7EAEE8FB117AD06BDD830B7586C\n");
}

#[test]
fn digest_vectors_from_password_and_from_nt_hash() {
    for (pw, salt, iterations, digest) in DIGEST_VECTORS {
        let canonical = format!("{};\n", digest.trim_end_matches(';'));
        let it = iterations.to_string();
        let o = phsync(
            &["hash", "digest", "--salt", salt, "--iterations", &it],
            format!("{pw}\n").as_bytes(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o), canonical);
        let nt = NT_VECTORS.iter().find(|(p, _)| p == pw).map(|(_, n)| *n);
        if let Some(nt) = nt {
            let o = phsync(
                &[
                    "hash",
                    "digest",
                    "--salt",
                    salt,
                    "--iterations",
                    &it,
                    "--nt-hash",
                    nt,
                ],
                b"",
            );
            assert_eq!(stdout(&o), canonical);
        }
    }
}

#[test]
fn digest_random_salt_verifies() {
    let a = phsync(&["hash", "digest"], b"Pa$$w0rd\n");
    let b = phsync(&["hash", "digest"], b"Pa$$w0rd\n");
    let (a, b) = (stdout(&a), stdout(&b));
    assert!(a.starts_with("v1;PPH1_MD4,") && a.contains(",1000,"), "{a}");
    assert_ne!(a, b);
    let o = phsync(&["hash", "verify", "--digest", a.trim()], b"Pa$$w0rd\n");
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn verify_exit_codes() {
    for (pw, _, _, digest) in DIGEST_VECTORS {
        let o = phsync(
            &["hash", "verify", "--digest", digest],
            format!("{pw}\n").as_bytes(),
        );
        assert_eq!(o.status.code(), Some(0), "{pw}: {}", stderr(&o));
        let o = phsync(
            &["hash", "verify", "--digest", digest],
            b"definitely wrong\n",
        );
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(stdout(&o), "mismatch\n");
    }
    for (_, key) in CONTROL_WRONG_KEYS {
        let o = phsync(
            &["hash", "verify", "--digest", &control_digest(key)],
            CONTROL_PASSWORD.as_bytes(),
        );
        assert_eq!(o.status.code(), Some(1), "negative control matched");
    }
    let o = phsync(
        &[
            "hash",
            "verify",
            "--digest",
            &control_digest(CONTROL_CORRECT_KEY),
        ],
        CONTROL_PASSWORD.as_bytes(),
    );
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn errors_exit_2_with_one_line() {
    let cases: Vec<(Vec<&str>, &[u8], &str)> = vec![
        (
            vec!["hash", "verify", "--digest", "v1;PPH1_MD4,zz"],
            b"x\n",
            "malformed digest",
        ),
        (vec!["hash", "nt"], b"", "no password on stdin"),
        (vec!["hash", "nt"], b"\xff\xfe\n", "not valid UTF-8"),
        (vec!["hash", "digest", "--salt", "abc"], b"x\n", "salt"),
        (
            vec!["hash", "digest", "--iterations", "0"],
            b"x\n",
            "iteration",
        ),
        (vec!["hash", "digest", "--nt-hash", "1234"], b"", "NT hash"),
    ];
    for (args, input, needle) in cases {
        let o = phsync(&args, input);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let long = "A".repeat(513);
    let o = phsync(&["hash", "nt"], format!("{long}\n").as_bytes());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("too long"));
}

#[test]
fn secrets_never_reach_stderr() {
    let o = phsync(
        &["hash", "verify", "--digest", "v1;PPH1_MD4,zz"],
        b"Sup3rSecret\n",
    );
    assert!(!stderr(&o).contains("Sup3rSecret"));
}

#[test]
fn bench_digest_reports_every_path_the_limit_and_the_reference() {
    let o = phsync(
        &[
            "bench",
            "digest",
            "--seconds",
            "0.05",
            "--iterations",
            "10",
            "--json",
        ],
        b"",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let paths: Vec<&str> = v["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"scalar portable"), "{paths:?}");
    assert!(v["paths"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["digests_per_second"].as_f64().unwrap() > 0.0));
    // python3 is on every machine this project runs CI on; its keys are cross-checked.
    assert!(
        v["reference"]["digests_per_second"].as_f64().unwrap() > 0.0,
        "{v}"
    );
    // The single-stream limit: both streams measured, the faster one taken, in digests of
    // 2 x 10 compressions.
    let limit = &v["limit"];
    let streams = limit["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "{limit}");
    let fastest = streams
        .iter()
        .map(|s| s["bytes_per_second"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(limit["bytes_per_second"].as_f64().unwrap(), fastest);
    let per_digest = limit["compressions_per_second"].as_f64().unwrap()
        / limit["digests_per_second"].as_f64().unwrap();
    assert!((per_digest - 20.0).abs() < 1e-6, "{limit}");
    assert_eq!(v["goal_vs_limit"].as_f64(), Some(1.5));
    assert!(v["chosen_vs_limit"].as_f64().unwrap() > 0.0, "{v}");
    if std::env::var_os("PHSYNC_DIGEST_PATH").is_none() {
        assert_eq!(v["chosen"]["how"], "measured");
    }
    if paths.contains(&"sha-ni x2") {
        assert!(v["interleaved_vs_limit"].as_f64().unwrap() > 0.0, "{v}");
        let unit = &v["sha_unit"];
        assert!(unit["latency_ns"].as_f64().unwrap() > 0.0, "{unit}");
        assert!(unit["interval_ns"].as_f64().unwrap() > 0.0, "{unit}");
        assert!(
            unit["max_digests_per_second"].as_f64().unwrap() > 0.0,
            "{unit}"
        );
    } else {
        assert!(v["sha_unit"].is_null(), "{v}");
    }
}

#[test]
fn bench_digest_obeys_the_path_override_and_reports_a_bad_one() {
    let run = |value: &str| -> serde_json::Value {
        let o = Command::new(env!("CARGO_BIN_EXE_phsync"))
            .args(["bench", "digest", "--seconds", "0.05", "--iterations", "5"])
            .arg("--json")
            .env("PHSYNC_DIGEST_PATH", value)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let v = run("portable");
    assert_eq!(v["chosen"]["path"], "scalar portable", "{v}");
    assert_eq!(v["chosen"]["how"], "forced by PHSYNC_DIGEST_PATH");
    assert!(v["chosen"]["note"].is_null());
    let v = run("avx9000");
    assert_eq!(v["chosen"]["how"], "measured");
    let note = v["chosen"]["note"].as_str().unwrap();
    assert!(
        note.contains("avx9000") && note.contains("one of"),
        "{note}"
    );
}
