//! `phsync audit` against the Samba AD lab: seeded accounts for every finding the lab can
//! produce (phsync-testkit's AuditFixture); exactly the expected accounts per finding, the
//! breach count, the exit codes, and no hash in any output.

use std::process::{Command, Output};

use phsync_testkit::audit_fixture::{AuditFixture, ADMIN_BREACH_COUNT};

fn audit(f: &AuditFixture, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phsync"))
        .arg("audit")
        .arg("--config")
        .arg(&f.sync.config)
        .args(extra)
        .output()
        .expect("run phsync")
}

fn names(v: &serde_json::Value, finding: &str, ou: &str) -> Vec<String> {
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["finding"] == finding)
        .unwrap_or_else(|| panic!("finding {finding} in the report"));
    f["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["distinguished_name"].as_str().unwrap().ends_with(ou))
        .map(|a| a["sam_account_name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn audit_reports_exactly_the_seeded_accounts_per_finding_without_hashes() {
    let f = AuditFixture::new("i18a-cli");
    let leaked = f.leaked.to_str().unwrap();
    let weak = f.weak.to_str().unwrap();
    let out = audit(
        &f,
        &[
            "--json",
            "--leaked-hashes",
            leaked,
            "--weak-passwords",
            weak,
        ],
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "findings mean exit 1: {stderr}");
    f.assert_no_hash("json", &stdout);
    f.assert_no_hash("stderr", &stderr);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["scope"], "sync_scope");
    // Scope: the OU's 10 users, not its computers.
    assert_eq!(v["accounts_audited"], 10, "{stdout}");
    for (finding, want) in &f.expected {
        let mut got = names(&v, finding, &f.sync.ou.dn);
        got.sort_by_key(|s| s.to_lowercase());
        assert_eq!(&got, want, "{finding}");
    }
    let leaked_acct = &v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["finding"] == "leaked_password")
        .unwrap()["accounts"][0];
    assert_eq!(leaked_acct["breach_count"], ADMIN_BREACH_COUNT);
    let admin = &v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["finding"] == "admin_with_finding")
        .unwrap()["accounts"][0];
    assert_eq!(admin["findings"], serde_json::json!(["leaked_password"]));
    let shared = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["finding"] == "shared_password")
        .unwrap();
    assert_eq!(shared["groups"], 1);
    assert!(shared["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["group"] == 1));
    assert_eq!(v["weak_passwords"], 3);

    // Text: counts first, grouped by finding, same accounts, no hash.
    let out = audit(&f, &["--leaked-hashes", leaked, "--weak-passwords", weak]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    f.assert_no_hash("text", &text);
    assert!(
        text.starts_with("Password quality audit: 10 accounts"),
        "{text}"
    );
    let first_list = text.find(":\n").unwrap();
    assert!(
        text[..first_list].contains("     1  Password in the leaked-hash list"),
        "{text}"
    );
    assert!(
        text.contains(&format!("seen {ADMIN_BREACH_COUNT} times")),
        "{text}"
    );

    // Without lists: those findings are "not checked", the others still found.
    let out = audit(&f, &["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let weak_f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["finding"] == "weak_password")
        .unwrap();
    assert_eq!(weak_f["checked"], false);
    assert_eq!(
        names(&v, "empty_password", &f.sync.ou.dn),
        f.expected["empty_password"]
    );
}

#[test]
fn audit_all_includes_computers_and_finds_the_default_computer_password() {
    let f = AuditFixture::new("i18a-all");
    let out = audit(&f, &["--all", "--json"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    f.assert_no_hash("json", &stdout);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["scope"], "all_accounts");
    assert_eq!(
        names(&v, "default_computer_password", &f.sync.ou.dn),
        std::slice::from_ref(&f.default_computer)
    );
    // Users in the OU get the same findings as in scope mode (lists not given).
    for finding in [
        "empty_password",
        "shared_password",
        "reversible_encryption",
        "password_never_expires",
    ] {
        let mut got = names(&v, finding, &f.sync.ou.dn);
        got.sort_by_key(|s| s.to_lowercase());
        assert_eq!(got, f.expected[finding], "{finding}");
    }
}

#[test]
fn audit_errors_are_exit_2_with_a_clear_message() {
    let f = AuditFixture::new("i18a-err");
    let out = audit(&f, &["--leaked-hashes", "/nonexistent/i18a/leaked.txt"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/i18a/leaked.txt"), "{err}");
    // An unsorted list is refused before the DC is asked anything.
    let unsorted = f.sync.dir.0.join("unsorted.txt");
    let text = std::fs::read_to_string(&f.leaked).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.reverse();
    std::fs::write(&unsorted, lines.join("\n")).unwrap();
    let out = audit(&f, &["--leaked-hashes", unsorted.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("not sorted"), "{err}");
    f.assert_no_hash("stderr", &err);
}
