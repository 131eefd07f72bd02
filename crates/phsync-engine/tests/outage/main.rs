//! Failures in the middle of a cycle: the DC dies, the phsync process is killed, the host
//! is in FIPS mode; the DC restarted under `phsync run`'s change notifications. Nothing may
//! be lost, nothing harmful applied twice.
//!
//! This binary stops and restarts the shared lab DC, so it holds its tests to one at a
//! time; cargo runs test binaries one after another, so no other suite sees the outage.

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    // The scope is read on its own thread while replication runs, so the cycle fails on
    // whichever of the two the DC was serving when it died.
    let text = err.to_string();
    assert!(
        text.contains("replication") || text.contains("directory (LDAP)"),
        "{err}"
    );
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

/// Starts the DC again (`lab.sh up`) when dropped while it is stopped, also when the test
/// panics: the other suites need it.
struct DcBackUp {
    stopped: bool,
}

impl DcBackUp {
    fn stop(&mut self) {
        self.stopped = true;
        lab("stop");
    }
    fn up(&mut self) {
        lab("up");
        self.stopped = false;
    }
}

impl Drop for DcBackUp {
    fn drop(&mut self) {
        if self.stopped {
            let script = phsync_testkit::repo_root().join("scripts/ad-lab/lab.sh");
            let _ = Command::new("bash").arg(script).arg("up").status();
        }
    }
}

/// Wait until `ok`, at most `bound`; the time it took.
fn within(bound: Duration, what: &str, mut ok: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < bound, "not within {bound:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

fn notification_state(f: &SyncFixture) -> String {
    phsync_engine::Engine::open(&f.config)
        .unwrap()
        .notification_status()
        .unwrap()
        .map(|n| n.state)
        .unwrap_or_default()
}

fn swapped(f: &SyncFixture, sam: &str, new: &str, old: &str) -> bool {
    f.sign_in(sam, new) == SignInStatus::Success
        && f.sign_in(sam, old) == SignInStatus::InvalidCredentials
}

#[test]
fn a_dc_restarted_under_phsync_run_is_reconnected_with_events_and_later_changes_arrive() {
    use phsync_engine::RunHooks;
    use std::sync::atomic::Ordering;

    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let f = SyncFixture::new("restart", "");
    let (ann, ben) = (f.sam("rsa"), f.sam("rsb"));
    f.ou.add_user(&ann, "Restart-Old-1!");
    f.ou.add_user(&ben, "Restart-Old-1!");
    let mut engine = f.engine();
    let stop = engine.stop_flag();
    std::thread::scope(|s| {
        let body = s.spawn(|| {
            // Whatever happens in the body, the run loop stops and the DC comes back.
            struct StopRun(std::sync::Arc<std::sync::atomic::AtomicBool>);
            impl Drop for StopRun {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
            let _stop = StopRun(stop.clone());
            let mut dc = DcBackUp { stopped: false };

            within(Duration::from_secs(60), "the first cycle", || {
                f.sign_in(&ann, "Restart-Old-1!") == SignInStatus::Success
                    && f.sign_in(&ben, "Restart-Old-1!") == SignInStatus::Success
            });
            within(
                Duration::from_secs(10),
                "notifications connected (690)",
                || notification_state(&f) == "connected",
            );

            // Stop the DC, change nothing, start it again.
            let down_at = Instant::now();
            dc.stop();
            let lost = within(Duration::from_secs(10), "notifications lost (691)", || {
                notification_state(&f) == "lost"
            });
            dc.up();
            let (outage, up_at) = (down_at.elapsed(), Instant::now());
            println!(
                "DC stopped and started again in {} ms (`lab.sh stop` + `lab.sh up`); \
                 the run loop saw the loss {} ms after `stop` returned",
                outage.as_millis(),
                lost.as_millis()
            );

            // A change right after the DC is back: the listener may still be waiting out its
            // backoff (1 s doubling, at most 60 s); the notification or the catch-up cycle
            // that follows the reconnection applies it.
            let changed_at = Instant::now();
            f.ou.set_password(&ann, "Restart-New-1!");
            within(
                phsync_engine::RECONNECT_MAX + Duration::from_secs(15),
                "notifications resumed (692)",
                || notification_state(&f) == "connected",
            );
            let reconnected = up_at.elapsed();
            within(Duration::from_secs(30), "ann after the restart", || {
                swapped(&f, &ann, "Restart-New-1!", "Restart-Old-1!")
            });
            println!(
                "notifications connected again {} ms after the DC was up; ann's change \
                 (made right after) arrived {} ms after its modify",
                reconnected.as_millis(),
                changed_at.elapsed().as_millis()
            );

            // With the notifications back, a change arrives by notification, within seconds.
            f.ou.set_password(&ben, "Restart-New-1!");
            let ben_took = within(Duration::from_secs(10), "ben by notification", || {
                swapped(&f, &ben, "Restart-New-1!", "Restart-Old-1!")
            });
            println!(
                "ben's change, after the reconnection, arrived {} ms after its modify",
                ben_took.as_millis()
            );
        });
        engine.run(RunHooks::default()).unwrap();
        if let Err(p) = body.join() {
            std::panic::resume_unwind(p);
        }
    });
    let ids: Vec<u64> = events(&f)
        .iter()
        .filter_map(|e| e["event_id"].as_u64())
        .filter(|i| (690..=692).contains(i) || *i == 601 || *i == 602)
        .collect();
    assert_eq!(ids, vec![601, 690, 691, 692, 602], "{:#?}", events(&f));
}
