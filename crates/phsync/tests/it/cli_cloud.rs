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
