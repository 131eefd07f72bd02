//! `phsync drsr dump` against the Samba AD lab (scripts/ad-lab/lab.sh up).

use std::process::{Command, Output};

use phsync_hash::NtHash;
use phsync_testkit::lab::Lab;

fn dump(lab: &Lab, extra: &[&str]) -> Output {
    let r = lab.replicator();
    Command::new(env!("CARGO_BIN_EXE_phsync"))
        .args(["drsr", "dump", "--dc", "127.0.0.1", "--domain"])
        .arg(lab.var("PHSYNC_LAB_DOMAIN"))
        .args(["--user", &r.sam, "--password-env", "PHSYNC_TEST_DRSR_PW"])
        .args(extra)
        .env("PHSYNC_TEST_DRSR_PW", &r.password)
        .output()
        .expect("run phsync")
}

fn hex_forms(pw: &str) -> [String; 2] {
    let h = NtHash::from_password(pw)
        .unwrap()
        .to_upper_hex()
        .to_string();
    [h.clone(), h.to_lowercase()]
}

#[test]
fn dump_hides_hashes_unless_asked() {
    let lab = Lab::load();
    let alice = lab.account("alice");
    let out = dump(&lab, &["--account", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("alice") && text.contains("nt=present"),
        "{text}"
    );
    for f in hex_forms(&alice.password) {
        assert!(!text.contains(&f));
    }

    let out = dump(&lab, &["--account", "alice", "--show-hashes", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sAMAccountName"], "alice");
    assert_eq!(v["ntHash"], hex_forms(&alice.password)[0]);
}

#[test]
fn dump_whole_domain_json_lists_seed_accounts_without_hashes() {
    let lab = Lab::load();
    let out = dump(&lab, &["--json", "--batch", "50"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let names: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| v["sAMAccountName"].as_str().map(str::to_owned))
        .collect();
    for a in &lab.seed() {
        assert!(names.contains(&a.sam), "{} missing", a.sam);
        for f in hex_forms(&a.password) {
            assert!(
                !text.contains(&f),
                "a hash was printed without --show-hashes"
            );
        }
    }
}

#[test]
fn dump_reports_bad_password_with_exit_2() {
    let lab = Lab::load();
    let r = lab.replicator();
    let out = Command::new(env!("CARGO_BIN_EXE_phsync"))
        .args([
            "drsr",
            "dump",
            "--dc",
            "127.0.0.1",
            "--domain",
            "PHS",
            "--user",
            &r.sam,
        ])
        .args([
            "--password-env",
            "PHSYNC_TEST_DRSR_BAD",
            "--account",
            "alice",
        ])
        .env("PHSYNC_TEST_DRSR_BAD", "wrong-password-9!")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("authentication rejected"), "{err}");
    assert!(!err.contains("wrong-password-9!"));
}
