//! Failures in the middle of a cycle: the DC dies, the phsync process is killed, the host
//! is in FIPS mode. Nothing may be lost, nothing harmful applied twice.
//!
//! This binary stops and restarts the shared lab DC, so it holds its tests to one at a
//! time; cargo runs test binaries one after another, so no other suite sees the outage.

use std::process::{Command, Stdio};
use std::sync::Mutex;

use phsync_tenant::SignInStatus;
use phsync_testkit::sync_fixture::SyncFixture;

static SERIAL: Mutex<()> = Mutex::new(());

fn lab(action: &str) {
    let script = phsync_testkit::repo_root().join("scripts/ad-lab/lab.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(action)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lab.sh {action}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn events(f: &SyncFixture) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(f.dir.0.join("state/events.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_dc_killed_mid_cycle_fails_the_cycle_with_611_and_the_next_cycle_loses_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let f = SyncFixture::new("dcdown", "");
    let (a, b) = (f.sam("una"), f.sam("vic"));
    f.ou.add_user(&a, "Una-OnPrem-1!");
    f.ou.add_user(&b, "Vic-OnPrem-1!");
    f.cycle(false);
    f.ou.set_password(&a, "Una-OnPrem-2!");
    f.ou.set_password(&b, "Vic-OnPrem-2!");

    // The scope is read, then the DC dies before replication.
    let mut engine = f.engine();
    let mut killed = false;
    let result = engine.cycle(false, &mut |stage, _, _| {
        if stage == "replicate" && !killed {
            killed = true;
            lab("stop");
        }
    });
    lab("up");
    assert!(killed, "the cycle never reached replication");
    let err = result.expect_err("a cycle without its DC must fail");
    assert!(err.to_string().contains("replication"), "{err}");
    assert!(
        events(&f).iter().any(|e| e["event_id"] == 611),
        "no 611 event"
    );
    assert_eq!(
        f.sign_in(&a, "Una-OnPrem-2!"),
        SignInStatus::InvalidCredentials,
        "nothing applied yet"
    );

    let report = f.cycle(false);
    assert_eq!(report.applied, 2, "{report:?}");
    assert_eq!(f.sign_in(&a, "Una-OnPrem-2!"), SignInStatus::Success);
    assert_eq!(f.sign_in(&b, "Vic-OnPrem-2!"), SignInStatus::Success);
}

#[test]
fn a_crash_mid_cycle_and_a_rerun_converge() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let f = SyncFixture::new("kill", "");
    let users: Vec<(String, String)> = (0..6)
        .map(|i| (f.sam(&format!("k{i}x")), format!("Kill-OnPrem-{i}!")))
        .collect();
    for (u, pw) in &users {
        f.ou.add_user(u, pw);
    }
    // One credential per tenant call, and a crash (a panic unwinding out of the cycle, as
    // abrupt as a kill for what is stored) right after the second is applied.
    let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut engine = f.engine();
        engine.set_credential_batch(1);
        let _ = engine.cycle(true, &mut |stage, done, _| {
            if stage == "credentials" && done == 2 {
                panic!("simulated crash after two credentials");
            }
        });
    }));
    assert!(
        crashed.is_err(),
        "the cycle did not reach its third credential"
    );
    let signed_in = users
        .iter()
        .filter(|(u, pw)| f.sign_in(u, pw) == SignInStatus::Success)
        .count();
    assert_eq!(signed_in, 2, "crashed after two credentials");

    let out = Command::new(phsync_testkit::phsync_bin())
        .args(["sync", "--json", "--config"])
        .arg(&f.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // No cursor was stored by the killed run: the rerun is full; what was applied is stale.
    assert_eq!(report["mode"], "full");
    assert_eq!(
        report["applied"].as_u64().unwrap() + report["stale"].as_u64().unwrap(),
        users.len() as u64
    );
    assert!(report["stale"].as_u64().unwrap() >= 2);
    for (u, pw) in &users {
        assert_eq!(f.sign_in(u, pw), SignInStatus::Success, "{u}");
    }
    let tenant_users = f.tenant().users().unwrap();
    assert_eq!(tenant_users.len(), users.len(), "no duplicate users");
    // A third run changes nothing.
    let again = f.cycle(false);
    assert_eq!(again.applied, 0);
}

#[test]
fn fips_mode_is_refused_with_667_unless_allowed() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let f = SyncFixture::new("fips", "");
    let u = f.sam("fay");
    f.ou.add_user(&u, "Fay-OnPrem-1!");
    let fips_file = f.dir.0.join("fips_enabled");
    std::fs::write(&fips_file, "1\n").unwrap();
    let run = || {
        Command::new(phsync_testkit::phsync_bin())
            .args(["sync", "--config"])
            .arg(&f.config)
            .env("PHSYNC_FIPS_ENABLED_FILE", &fips_file)
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("FIPS") && err.contains("allow_non_fips_crypto"),
        "{err}"
    );
    assert!(events(&f).iter().any(|e| e["event_id"] == 667));
    assert_eq!(
        f.sign_in(&u, "Fay-OnPrem-1!"),
        SignInStatus::InvalidCredentials
    );

    f.write_config("allow_non_fips_crypto = true");
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(f.sign_in(&u, "Fay-OnPrem-1!"), SignInStatus::Success);
}

#[test]
fn a_stopped_dc_is_a_clear_unreachable_error_for_ldap_and_replication() {
    use phsync_directory::DirectoryError;
    use phsync_drsr::{Auth, DrsrClient, DrsrConfig, DrsrError};

    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let f = SyncFixture::new("stopped", "");
    let config = phsync_engine::config::Config::load(&f.config).unwrap();
    let replicator = f.ou.lab.account("phs-replicator");
    lab("stop");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ldap = rt.block_on(phsync_testkit::lab::connect(&config.source));
    let drsr = rt.block_on(DrsrClient::connect(&DrsrConfig::new(
        "127.0.0.1",
        Auth::Ntlm {
            domain: f.ou.lab.domain.clone(),
            user: "phs-replicator".into(),
            password: zeroize::Zeroizing::new(replicator.password.clone()),
        },
    )));
    let cli = Command::new(phsync_testkit::phsync_bin())
        .args(["sync", "--config"])
        .arg(&f.config)
        .output()
        .unwrap();
    lab("up");
    match ldap {
        Err(DirectoryError::Unreachable { url, .. }) => assert!(url.contains("127.0.0.1")),
        Err(e) => panic!("LDAP to a stopped DC: expected unreachable, got {e}"),
        Ok(_) => panic!("LDAP connected to a stopped DC"),
    }
    match drsr {
        Err(e @ DrsrError::Unreachable { .. }) => {
            assert!(e.to_string().contains("127.0.0.1"), "{e}")
        }
        Err(e) => panic!("DRSR to a stopped DC: expected unreachable, got {e}"),
        Ok(_) => panic!("DRSR connected to a stopped DC"),
    }
    assert_eq!(cli.status.code(), Some(2));
    let err = String::from_utf8_lossy(&cli.stderr);
    assert!(
        err.contains("phsync: error:") && err.contains("127.0.0.1"),
        "{err}"
    );
    assert!(events(&f).iter().any(|e| e["event_id"] == 611));
}

#[test]
fn phsync_run_cycles_until_sigterm() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let f = SyncFixture::new("daemon", "interval_seconds = 1");
    let u = f.sam("rob");
    f.ou.add_user(&u, "Rob-OnPrem-1!");
    let mut child = Command::new(phsync_testkit::phsync_bin())
        .args(["run", "--config"])
        .arg(&f.config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // Wait for the first cycle, change a password, wait for the cycle that sends it.
    while f.sign_in(&u, "Rob-OnPrem-1!") != SignInStatus::Success {
        assert!(
            std::time::Instant::now() < deadline,
            "phsync run never synced"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    f.ou.set_password(&u, "Rob-OnPrem-2!");
    while f.sign_in(&u, "Rob-OnPrem-2!") != SignInStatus::Success {
        assert!(
            std::time::Instant::now() < deadline,
            "phsync run never sent the change"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(status.success(), "phsync run exited with {status}");
    let ids: Vec<u64> = events(&f)
        .iter()
        .filter_map(|e| e["event_id"].as_u64())
        .collect();
    assert_eq!(ids.first(), Some(&601), "{ids:?}");
    assert_eq!(ids.last(), Some(&602), "{ids:?}");
    assert!(ids.contains(&651));
}
