//! The CLI against hostile content and a hostile file system (issue 15): names and details
//! with terminal control sequences, symbolic links planted where phsync writes, a umask of
//! 000; and session revocation.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use phsync_testkit::tenant::TempDir;

/// `phsync ARGS` with `stdin`, under `sh -c 'umask 000; exec ...'` when `open_umask`.
fn run(args: &[&str], stdin: &str, open_umask: bool) -> Output {
    let bin = env!("CARGO_BIN_EXE_phsync");
    let mut cmd = if open_umask {
        let mut c = Command::new("sh");
        c.arg("-c").arg("umask 000; exec \"$0\" \"$@\"").arg(bin);
        c
    } else {
        Command::new(bin)
    };
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn cloud(tenant: &Path, args: &[&str], stdin: &str) -> Output {
    let mut all = vec!["cloud", "--tenant", tenant.to_str().unwrap()];
    all.extend_from_slice(args);
    run(&all, stdin, false)
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every line is `columns` fields split by TAB, with no other control byte: no ESC, CSI
/// (as a C1 byte), DEL, CR or stray LF got through.
fn assert_inert(what: &str, text: &str, lines: usize, columns: usize) {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let got: Vec<&str> = body.split('\n').collect();
    assert_eq!(got.len(), lines, "{what}: {text:?}");
    for line in got {
        assert_eq!(line.split('\t').count(), columns, "{what}: {line:?}");
        for b in line.bytes() {
            assert!(
                (b >= 0x20 || b == b'\t') && b != 0x7f && b != 0x9b,
                "{what}: byte {b:#x} in {line:?}"
            );
        }
    }
}

#[test]
fn text_output_escapes_control_characters_in_stored_strings() {
    let dir = TempDir::new("cli-hostile");
    let t = dir.0.join("t.db");
    ok(&cloud(&t, &["user", "add", "--upn", "plain@phs.test"], ""));
    ok(&cloud(
        &t,
        &["token", "create", "--role", "admin", "--name", "ops"],
        "",
    ));
    // The tenant API refuses such strings; an older or tampered store may hold them anyway.
    let evil_upn = "evil\x1b[2J\t\r\nroot@phs.test";
    let evil = "a\x1b]0;owned\x07b\tc\r\nd\u{9b}31me\u{7f}f\u{202e}g\\u{1b}";
    {
        let db = rusqlite::Connection::open(&t).unwrap();
        db.execute(
            "INSERT INTO users (upn, upn_key, source_anchor, display_name, enabled, origin,
                                created_at, updated_at)
             VALUES (?1, lower(?1), ?2, ?2, 1, 'synced', 0, 0)",
            rusqlite::params![evil_upn, evil],
        )
        .unwrap();
        db.execute(
            "UPDATE users SET source_anchor = ?1 || 'x' WHERE upn = 'plain@phs.test'",
            [evil],
        )
        .unwrap();
        db.execute(
            "INSERT INTO audit (at, actor, action, upn, source_anchor, outcome, detail)
             VALUES (1, ?1, ?1, ?2, ?1, ?1, ?1)",
            rusqlite::params![evil, evil_upn],
        )
        .unwrap();
        db.execute("UPDATE tokens SET name = ?1, source = ?1", [evil])
            .unwrap();
    }
    let list = ok(&cloud(&t, &["user", "list"], ""));
    assert_inert("user list", &list, 2, 6);
    assert!(
        list.contains("evil\\u{1b}[2J\\u{9}\\u{d}\\u{a}root@phs.test"),
        "{list}"
    );
    // The backslash is escaped too: stored text cannot pose as an escape.
    assert!(list.contains("g\\\\u{1b}"), "{list}");
    let show = ok(&cloud(&t, &["user", "show", "--upn", "plain@phs.test"], ""));
    assert_inert("user show", &show, 1, 6);
    let audit = ok(&cloud(&t, &["audit", "--limit", "1"], ""));
    assert_inert("audit", &audit, 1, 6);
    let tokens = ok(&cloud(&t, &["token", "list"], ""));
    assert_inert("token list", &tokens, 1, 5);
    // JSON keeps the exact strings (serde escapes them).
    let json: serde_json::Value =
        serde_json::from_str(&ok(&cloud(&t, &["user", "list", "--json"], ""))).unwrap();
    assert!(json
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["user_principal_name"] == evil_upn));
}

#[test]
fn session_revoke_and_the_lockout_column() {
    let dir = TempDir::new("cli-sessions");
    let t = dir.0.join("t.db");
    ok(&cloud(&t, &["user", "add", "--upn", "dana@phs.test"], ""));
    ok(&cloud(
        &t,
        &["set-password", "--upn", "dana@phs.test"],
        "Orchid-Passw0rd-1\n",
    ));
    let signed: serde_json::Value = serde_json::from_str(&ok(&cloud(
        &t,
        &["sign-in", "--upn", "dana@phs.test", "--json"],
        "Orchid-Passw0rd-1\n",
    )))
    .unwrap();
    assert!(signed["session_token"].is_string());
    let o = ok(&cloud(
        &t,
        &["session", "revoke", "--upn", "dana@phs.test"],
        "",
    ));
    assert_eq!(o, "revoked 1 session(s) for dana@phs.test\n");
    let v: serde_json::Value = serde_json::from_str(&ok(&cloud(
        &t,
        &["session", "revoke", "--upn", "dana@phs.test", "--json"],
        "",
    )))
    .unwrap();
    assert_eq!(v["revoked"], 0);
    assert_eq!(v["user_principal_name"], "dana@phs.test");

    let show = ok(&cloud(&t, &["user", "show", "--upn", "dana@phs.test"], ""));
    assert!(show.trim_end().ends_with("\t-"), "{show}");
    ok(&cloud(
        &t,
        &["settings", "set", "lockout_threshold", "2"],
        "",
    ));
    for wrong in ["wrong-1\n", "wrong-2\n", "wrong-3\n"] {
        cloud(&t, &["sign-in", "--upn", "dana@phs.test"], wrong);
    }
    let show = ok(&cloud(&t, &["user", "show", "--upn", "dana@phs.test"], ""));
    assert!(show.contains("\tlocked until "), "{show}");
}

#[test]
fn symbolic_links_are_refused_for_the_tenant_file_and_token_out() {
    let dir = TempDir::new("cli-symlink");
    let victim = dir.0.join("victim");
    std::fs::write(&victim, b"keep me").unwrap();
    let link = dir.0.join("link.db");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let o = cloud(&link, &["status"], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is a symbolic link; refusing to follow it"),
        "{}",
        stderr(&o)
    );

    let t = dir.0.join("t.db");
    let out_link = dir.0.join("token-link");
    std::os::unix::fs::symlink(&victim, &out_link).unwrap();
    let o = cloud(
        &t,
        &[
            "token",
            "create",
            "--role",
            "admin",
            "--name",
            "ops",
            "--out",
            out_link.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is a symbolic link; refusing to follow it"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    let tokens = ok(&cloud(&t, &["token", "list"], ""));
    assert_eq!(tokens, "", "a token was issued that nothing holds");
}

#[test]
fn files_and_directories_are_private_under_umask_000() {
    let dir = TempDir::new("cli-umask");
    let d = &dir.0;
    std::fs::write(d.join("replicator.pw"), "pw\n").unwrap();
    std::fs::set_permissions(
        d.join("replicator.pw"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(d.join("ca.pem"), "unused by `phsync status`\n").unwrap();
    std::fs::write(
        d.join("cfg.toml"),
        r#"[source]
domain_controller = "127.0.0.1"
ldap_url = "ldaps://127.0.0.1"
ca_file = "ca.pem"
realm = "PHS.TEST"
netbios_domain = "PHS"
username = "phs-replicator"
password_file = "replicator.pw"

[sync]
scope_ous = ["OU=x,DC=phs,DC=test"]

[cloud]
tenant = "tenant.db"

[state]
dir = "a/b/state"
"#,
    )
    .unwrap();
    let cfg = d.join("cfg.toml");
    ok(&run(
        &["status", "--config", cfg.to_str().unwrap()],
        "",
        true,
    ));
    for sub in ["a", "a/b", "a/b/state"] {
        assert_eq!(mode(&d.join(sub)), 0o700, "{sub}");
    }
    for f in ["a/b/state/state.db", "a/b/state/events.jsonl"] {
        assert_eq!(mode(&d.join(f)), 0o600, "{f}");
    }

    let t = d.join("t.db");
    let tok = d.join("admin.token");
    ok(&run(
        &[
            "cloud",
            "--tenant",
            t.to_str().unwrap(),
            "token",
            "create",
            "--role",
            "admin",
            "--name",
            "ops",
            "--out",
            tok.to_str().unwrap(),
        ],
        "",
        true,
    ));
    assert_eq!(mode(&t), 0o600);
    assert_eq!(mode(&tok), 0o600);
    for side in ["t.db-wal", "t.db-shm"] {
        if d.join(side).exists() {
            assert_eq!(mode(&d.join(side)), 0o600, "{side}");
        }
    }
}

/// `cloud serve` logs to stderr from the start: JSON lines with `--log-format json`.
#[test]
fn serve_logs_json_lines_on_stderr() {
    use std::io::{BufRead, BufReader};
    let dir = TempDir::new("cli-serve-log");
    let config = dir.0.join("service.toml");
    std::fs::write(
        &config,
        format!(
            "[service]\nlisten = \"127.0.0.1:0\"\nstore = \"{}\"\n",
            dir.0.join("t.db").display()
        ),
    )
    .unwrap();
    let bad = run(
        &[
            "cloud",
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--log-level",
            "phsync_service=loud",
        ],
        "",
        false,
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("--log-level"), "{}", stderr(&bad));

    let mut child = Command::new(env!("CARGO_BIN_EXE_phsync"))
        .args(["cloud", "serve", "--insecure-http", "--log-format", "json"])
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let event: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
    assert_eq!(event["level"], "INFO", "{line}");
    assert_eq!(
        event["fields"]["message"], "tenant service listening",
        "{line}"
    );
    assert!(
        event["fields"]["url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{line}"
    );
}
