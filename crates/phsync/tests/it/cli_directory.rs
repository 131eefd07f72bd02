//! `phsync directory ...` end to end against the AD lab (tests/common/lab.rs).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use phsync_testkit::lab::Lab;

fn phsync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phsync"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// A config file for the lab in `dir`, with relative paths to copies of the CA and password.
fn write_config(lab: &Lab, dir: &Path, extra_source: &str, sync: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(&lab.ca_file, dir.join("ca.pem")).unwrap();
    let pw = dir.join("bind.password");
    std::fs::copy(&lab.admin_password_file, &pw).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!(
        "[source]\nldap_url = {:?}\nca_file = \"ca.pem\"\nrealm = {:?}\nnetbios_domain = {:?}\nusername = {:?}\npassword_file = \"bind.password\"\n{extra_source}\n[sync]\n{sync}\n",
        lab.ldaps_url, lab.realm, lab.domain, lab.admin_upn
    );
    let path = dir.join("phsync.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn users_json_lists_the_scope() {
    let lab = Lab::load();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(&lab, dir.path(), "", "");
    let o = phsync(&["directory", "users", "--config", &cfg, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let users: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let seeded: BTreeSet<String> = lab.seed().into_iter().map(|a| a.sam).collect();
    let got: BTreeSet<String> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["sam_account_name"].as_str().unwrap().to_string())
        .filter(|s| seeded.contains(s) || s == "krbtgt" || s == "Administrator")
        .collect();
    let want: BTreeSet<String> = [
        "alice",
        "bob",
        "carol",
        "dave",
        "frank",
        "grace",
        "demo1",
        "demo2",
        "norights",
        "phs-replicator",
    ]
    .map(String::from)
    .into();
    assert_eq!(got, want);
    let frank = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["sam_account_name"] == "frank")
        .unwrap();
    assert_eq!(frank["user_principal_name"], "frank@phs.test");
    assert_eq!(frank["upn_derived"], true);
    assert_eq!(frank["object_guid"].as_str().unwrap().len(), 36);
}

#[test]
fn users_table_and_scope_from_the_file() {
    let lab = Lab::load();
    let dir = tempfile::tempdir().unwrap();
    let sync = "scope_groups = [\"PHS-Sync-Users\"]";
    let cfg = write_config(&lab, dir.path(), "", sync);
    let o = phsync(&["directory", "users", "--config", &cfg]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.starts_with("SAMACCOUNTNAME"), "{out}");
    let names: BTreeSet<&str> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(names.contains("alice") && names.contains("dave"), "{out}");
    assert!(!names.contains("bob"), "{out}");
}

#[test]
fn user_and_info() {
    let lab = Lab::load();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(&lab, dir.path(), "", "");
    let o = phsync(&["directory", "user", "--config", &cfg, "PHS\\dave", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let u: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(u["sam_account_name"], "dave");
    assert!(u["object_sid"].as_str().unwrap().starts_with("S-1-5-21-"));
    let o = phsync(&["directory", "user", "--config", &cfg, "nobody-x9"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "phsync: error: no user \"nobody-x9\" in the directory\n"
    );
    let o = phsync(&["directory", "info", "--config", &cfg]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains(&format!("defaultNamingContext: {}", lab.base_dn)),
        "{out}"
    );
}

#[test]
fn unknown_key_exits_2_naming_it() {
    let lab = Lab::load();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(&lab, dir.path(), "ldap_timeout_typo = 5", "");
    let o = phsync(&["directory", "users", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.starts_with("phsync: error: ") && err.contains("ldap_timeout_typo"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(o.stdout.is_empty());
}

#[test]
fn connection_errors_exit_2() {
    let lab = Lab::load();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(&lab, dir.path(), "", "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&lab.ldaps_url, "ldaps://127.0.0.1:1");
    std::fs::write(&cfg, text).unwrap();
    let o = phsync(&["directory", "users", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("unreachable") && err.contains("ldaps://127.0.0.1:1"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let o = phsync(&["directory", "users", "--config", "/nonexistent/phsync.toml"]);
    assert_eq!(o.status.code(), Some(2));
}
