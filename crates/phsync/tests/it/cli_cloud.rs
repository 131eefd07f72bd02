//! `phsync cloud ...` end to end, including two processes writing one tenant at once.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use phsync_testkit::tenant::TempDir;

fn phsync(tenant: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_phsync"))
        .arg("cloud")
        .arg("--tenant")
        .arg(tenant)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn admin_and_user_flows() {
    let dir = TempDir::new("cli-cloud");
    let t = dir.0.join("t.db").display().to_string();
    let o = phsync(
        &t,
        &[
            "user",
            "add",
            "--upn",
            "Dana@phs.test",
            "--display-name",
            "Dana D",
        ],
        "",
    );
    assert!(o.status.success(), "{}", err(&o));
    let o = phsync(
        &t,
        &[
            "set-password",
            "--upn",
            "dana@phs.test",
            "--force-change",
            "--json",
        ],
        "Initial-Passw0rd\n",
    );
    assert!(o.status.success(), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["result"], "applied");
    assert_eq!(v["force_change_at_next_sign_in"], true);

    let o = phsync(
        &t,
        &["sign-in", "--upn", "dana@phs.test"],
        "Initial-Passw0rd\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(out(&o), "must_change_password\n");
    let o = phsync(
        &t,
        &["change-password", "--upn", "dana@phs.test"],
        "Initial-Passw0rd\nMy-Own-Passw0rd\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));
    let o = phsync(
        &t,
        &["sign-in", "--upn", "DANA@phs.test", "--json"],
        "My-Own-Passw0rd\n",
    );
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["result"], "success");
    assert!(v["session_token"].as_str().unwrap().len() >= 40);

    let wrong = phsync(&t, &["sign-in", "--upn", "dana@phs.test"], "nope\n");
    let unknown = phsync(&t, &["sign-in", "--upn", "nobody@phs.test"], "nope\n");
    assert_eq!(wrong.status.code(), Some(1));
    assert_eq!(out(&wrong), out(&unknown));

    let o = phsync(&t, &["set-password", "--upn", "dana@phs.test"], "weak\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("password policy"), "{}", err(&o));
    let o = phsync(
        &t,
        &["set-password", "--upn", "ghost@phs.test"],
        "Ghost-Passw0rd\n",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("no user"), "{}", err(&o));

    let o = phsync(
        &t,
        &["user", "show", "--upn", "dana@phs.test", "--json"],
        "",
    );
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["origin"], "cloud");
    assert_eq!(v["password"]["source"], "cloud");
    assert_eq!(v["display_name"], "Dana D");

    let o = phsync(&t, &["settings", "set", "lockout_threshold", "5"], "");
    assert!(o.status.success(), "{}", err(&o));
    let o = phsync(&t, &["settings", "set", "no_such_setting", "5"], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("unknown setting"));
    let o = phsync(&t, &["settings", "show"], "");
    assert!(out(&o).contains("\"lockout_threshold\": 5"));

    let o = phsync(&t, &["audit", "--json"], "");
    let audit = out(&o);
    for secret in ["Initial-Passw0rd", "My-Own-Passw0rd", "nope", "weak\""] {
        assert!(!audit.contains(secret), "audit shows a secret");
    }
    assert!(audit.contains("password.change"));
}

#[test]
fn two_processes_writing_one_tenant_lose_nothing() {
    let dir = TempDir::new("cli-race");
    let t = dir.0.join("race.db").display().to_string();
    let workers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|side| {
            let t = t.clone();
            std::thread::spawn(move || {
                for i in 0..15 {
                    let upn = format!("{side}{i}@phs.test");
                    let o = phsync(&t, &["user", "add", "--upn", &upn], "");
                    assert!(o.status.success(), "{upn}: {}", err(&o));
                    let o = phsync(&t, &["set-password", "--upn", &upn], "Race-Passw0rd-1\n");
                    assert!(o.status.success(), "{upn}: {}", err(&o));
                }
            })
        })
        .collect();
    workers.into_iter().for_each(|w| w.join().unwrap());
    let o = phsync(&t, &["user", "list", "--json"], "");
    let users: Vec<serde_json::Value> = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(users.len(), 30);
    assert!(users.iter().all(|u| u["password"]["source"] == "cloud"));
    let o = phsync(&t, &["audit", "--limit", "1000", "--json"], "");
    let audit: Vec<serde_json::Value> = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a["action"] == "password.reset")
            .count(),
        30
    );
}

/// Leaked-credentials marks (issue 18) as administrators see them from the shell, in a
/// tenant file and in PostgreSQL: `cloud risk list` and `cloud user show`, never a hash.
#[test]
fn risk_list_and_user_show_name_leaked_users_without_a_hash() {
    use phsync_testkit::tenant::{provision, sync_leaked, TestDatabase};
    let dir = TempDir::new("cli-risk");
    let db = TestDatabase::new("cli_risk");
    for t in [dir.0.join("t.db").display().to_string(), db.url.clone()] {
        let tenant = phsync_tenant::open(&t, "test").unwrap();
        provision(tenant.as_ref(), "Umlzaw==", "risky@phs.test");
        provision(tenant.as_ref(), "U2FmZQ==", "safe@phs.test");
        let digest = sync_leaked(tenant.as_ref(), "Umlzaw==", "Summer2024!", Some(31));
        let nt = phsync_hash::NtHash::from_password("Summer2024!")
            .unwrap()
            .to_upper_hex();
        let no_secret = |text: &str| {
            assert!(!text.contains(digest.as_str()), "{text}");
            assert!(!text.to_uppercase().contains(nt.as_str()), "{text}");
        };

        let o = phsync(&t, &["risk", "list"], "");
        assert!(o.status.success(), "{}", err(&o));
        let text = out(&o);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(lines[0].starts_with("risky@phs.test\tleaked_credentials\tdetected "));
        assert!(lines[0].ends_with("\t31 breaches"), "{text}");
        no_secret(&text);

        let o = phsync(&t, &["risk", "list", "--json"], "");
        let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
        assert_eq!(v[0]["user_principal_name"], "risky@phs.test");
        assert_eq!(v[0]["kind"], "leaked_credentials");
        assert_eq!(v[0]["breach_count"], 31);
        assert_eq!(v.as_array().unwrap().len(), 1);

        let o = phsync(&t, &["user", "show", "--upn", "risky@phs.test"], "");
        let text = out(&o);
        assert!(
            text.lines()
                .any(|l| l.starts_with("risk\tleaked_credentials\tdetected ")),
            "{text}"
        );
        no_secret(&text);
        let o = phsync(
            &t,
            &["user", "show", "--upn", "risky@phs.test", "--json"],
            "",
        );
        let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
        assert_eq!(v["risks"][0]["breach_count"], 31);
        no_secret(&out(&o));
        let o = phsync(
            &t,
            &["user", "show", "--upn", "safe@phs.test", "--json"],
            "",
        );
        let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
        assert_eq!(v["risks"], serde_json::json!([]));
    }
}
