//! The engine through the C ABI against the lab DC: cycles, progress and stop, the
//! connection check. Each test scopes the engine to an OU of its own.

use std::collections::BTreeSet;

use phsync_tenant::SignInStatus;
use phsync_testkit::sync_fixture::SyncFixture;

/// A JSON result from the C ABI, freed.
unsafe fn take(p: *mut std::ffi::c_char) -> serde_json::Value {
    let v = serde_json::from_str(std::ffi::CStr::from_ptr(p).to_str().unwrap()).unwrap();
    phsync::phs_string_free(p);
    v
}

/// This thread's last C ABI error message.
fn last_error() -> String {
    let mut msg = vec![0 as std::ffi::c_char; 1024];
    unsafe {
        phsync::phs_last_error_message(msg.as_mut_ptr(), msg.len());
        std::ffi::CStr::from_ptr(msg.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}
#[test]
fn the_engine_through_the_c_abi() {
    use std::ffi::{c_char, c_void, CStr, CString};
    use std::ptr;

    use phsync::*;

    unsafe extern "C" fn on_progress(
        context: *mut c_void,
        stage: *const c_char,
        done: u64,
        total: u64,
    ) -> i32 {
        let seen = &mut *(context as *mut Vec<(String, u64, u64)>);
        seen.push((
            CStr::from_ptr(stage).to_string_lossy().into_owned(),
            done,
            total,
        ));
        0
    }

    let f = SyncFixture::new("cabi", "");
    let u = f.sam("cara");
    f.ou.add_user(&u, "Cara-OnPrem-1!");
    let config = CString::new(f.config.to_str().unwrap()).unwrap();
    unsafe {
        let mut engine = ptr::null_mut();
        assert_eq!(phs_engine_open(config.as_ptr(), &mut engine), PHS_OK);
        let mut seen: Vec<(String, u64, u64)> = Vec::new();
        let mut json = ptr::null_mut();
        let status = phs_sync_cycle(
            engine,
            PHS_SYNC_FULL,
            Some(on_progress),
            &mut seen as *mut _ as *mut c_void,
            &mut json,
        );
        assert_eq!(status, PHS_OK);
        let report = take(json);
        assert_eq!(report["mode"], "full");
        assert_eq!(report["applied"], 1);
        assert_eq!(report["ok"], true);
        let stages: BTreeSet<&str> = seen.iter().map(|(s, ..)| s.as_str()).collect();
        for stage in ["scope", "replicate", "provision", "credentials"] {
            assert!(stages.contains(stage), "no {stage} progress: {seen:?}");
        }
        // done <= total, or total 0 (not known yet: replication batches report what came so far).
        assert!(seen
            .iter()
            .all(|(_, done, total)| done <= total || *total == 0));
        assert!(seen
            .iter()
            .any(|(stage, done, total)| stage == "replicate" && *total == 0 && *done >= 1));

        let name = CString::new(u.clone()).unwrap();
        let mut json = ptr::null_mut();
        assert_eq!(phs_user_status(engine, name.as_ptr(), &mut json), PHS_OK);
        let st = take(json);
        assert_eq!(st["status"], "Success");
        assert!(!st["history"].as_array().unwrap().is_empty());
        let mut json = ptr::null_mut();
        assert_eq!(phs_sync_status(engine, &mut json), PHS_OK);
        let all = take(json);
        let last = &all["last_cycle"];
        assert_eq!(last["mode"], "full", "{last}");
        assert_eq!(last["ok"], true);
        assert_eq!(last["applied"], 1);
        assert_eq!(last["in_scope"], 1);
        assert_eq!(last["changes"], 1);
        assert!(last["error"].is_null());
        for key in ["started_at", "finished_at"] {
            let at = last[key].as_str().unwrap();
            phsync_tenant::Timestamp::parse_rfc3339(at).unwrap();
        }
        for key in ["stale", "filtered", "disabled", "failed", "retry_queued"] {
            assert_eq!(last[key], 0, "{key}: {last}");
        }
        assert!(last.get("summary").is_none(), "{last}");
        assert!(all["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["sam_account_name"] == u.as_str()));
        let mut json = ptr::null_mut();
        assert_eq!(phs_sync_user(engine, name.as_ptr(), &mut json), PHS_OK);
        assert_eq!(take(json)["status"], "Success");

        let nobody = CString::new("nobody-at-all").unwrap();
        assert_eq!(
            phs_user_status(engine, nobody.as_ptr(), &mut json),
            PHS_E_NOT_FOUND
        );
        assert_eq!(
            phs_sync_user(engine, nobody.as_ptr(), &mut json),
            PHS_E_NOT_FOUND
        );
        assert_eq!(
            phs_sync_cycle(engine, 0x40, None, ptr::null_mut(), &mut json),
            PHS_E_INVALID_ARGUMENT
        );
        assert_eq!(
            phs_sync_cycle(ptr::null_mut(), 0, None, ptr::null_mut(), &mut json),
            PHS_E_NULL_ARGUMENT
        );
        assert_eq!(
            phs_sync_cycle(engine, 0, None, ptr::null_mut(), ptr::null_mut()),
            PHS_E_NULL_ARGUMENT
        );
        phs_engine_free(engine);
        phs_engine_free(ptr::null_mut());

        let missing = CString::new("/nonexistent/phsync.toml").unwrap();
        let mut other = ptr::null_mut();
        assert_eq!(phs_engine_open(missing.as_ptr(), &mut other), PHS_E_CONFIG);
        assert!(other.is_null());
        let bad = f.dir.0.join("bad.toml");
        std::fs::write(&bad, "[source]\nrelam = \"X\"\n").unwrap();
        let bad = CString::new(bad.to_str().unwrap()).unwrap();
        assert_eq!(phs_engine_open(bad.as_ptr(), &mut other), PHS_E_CONFIG);
        let mut msg = vec![0 as c_char; 512];
        phs_last_error_message(msg.as_mut_ptr(), msg.len());
        assert!(CStr::from_ptr(msg.as_ptr())
            .to_string_lossy()
            .contains("relam"));
    }
}

#[test]
fn a_progress_callback_returning_nonzero_stops_the_cycle_and_the_next_one_converges() {
    use std::ffi::{c_char, c_void, CStr, CString};
    use std::ptr;

    use phsync::*;
    use phsync_engine::CREDENTIAL_BATCH;

    /// What the callback saw, and whether it asks to stop.
    #[derive(Default)]
    struct Caller {
        stop: bool,
        credentials: u64,
        stages: Vec<String>,
    }
    unsafe extern "C" fn on_progress(
        context: *mut c_void,
        stage: *const c_char,
        _done: u64,
        _total: u64,
    ) -> i32 {
        let caller = &mut *(context as *mut Caller);
        let stage = CStr::from_ptr(stage).to_string_lossy().into_owned();
        let credentials = stage == "credentials";
        caller.stages.push(stage);
        if credentials {
            caller.credentials += 1;
            return i32::from(caller.stop);
        }
        0
    }

    // More users than one credential batch, so a stop lands between batches.
    let f = SyncFixture::new("stop", "");
    let n = CREDENTIAL_BATCH + 4;
    let users: Vec<(String, String)> = (0..n)
        .map(|i| (f.sam(&format!("st{i}")), format!("Stop-OnPrem-{i}!")))
        .collect();
    f.ou.add_users(&users);
    let config = CString::new(f.config.to_str().unwrap()).unwrap();
    let (first, last) = (&users[0], &users[n - 1]);
    unsafe {
        let mut engine = ptr::null_mut();
        assert_eq!(phs_engine_open(config.as_ptr(), &mut engine), PHS_OK);

        // Stop at the first credential: the batch in flight is finished, nothing more.
        let mut caller = Caller {
            stop: true,
            ..Caller::default()
        };
        let mut json = ptr::null_mut();
        let status = phs_sync_cycle(
            engine,
            PHS_SYNC_FULL,
            Some(on_progress),
            &mut caller as *mut Caller as *mut c_void,
            &mut json,
        );
        assert_eq!(status, PHS_E_CANCELLED, "{}", last_error());
        assert!(json.is_null());
        assert_eq!(
            CStr::from_ptr(phs_status_name(status as i32))
                .to_str()
                .unwrap(),
            "PHS_E_CANCELLED"
        );
        assert!(last_error().contains("stopped"), "{}", last_error());
        assert!(
            (1..=CREDENTIAL_BATCH as u64).contains(&caller.credentials),
            "not stopped promptly: {} credentials reported",
            caller.credentials
        );
        let synced = f
            .tenant()
            .users()
            .unwrap()
            .into_iter()
            .filter(|u| u.password.is_some())
            .count();
        assert!(
            (1..n).contains(&synced),
            "{synced} of {n} users have a password after the stop"
        );
        let mut json = ptr::null_mut();
        assert_eq!(phs_sync_status(engine, &mut json), PHS_OK);
        let stopped = take(json)["last_cycle"].clone();
        assert_eq!(stopped["ok"], false, "{stopped}");
        assert_eq!(stopped["error"], "stopped by the caller");
        assert_eq!(stopped["mode"], "full");
        assert_eq!(stopped["in_scope"], n as u64);
        assert_eq!(stopped["applied"], synced as u64, "{stopped}");

        // The stop is logged as such, and no "finished" event claims otherwise.
        let ids = [619u16, 622, 623];
        let mut json = ptr::null_mut();
        assert_eq!(
            phs_events(
                config.as_ptr(),
                ids.as_ptr(),
                ids.len(),
                i64::MIN,
                0,
                &mut json
            ),
            PHS_OK
        );
        let events = take(json);
        let events = events.as_array().unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["event_id"], 619);
        assert_eq!(events[0]["level"], "info");
        assert!(events[0]["message"]
            .as_str()
            .unwrap()
            .contains("stopped by the caller"));

        // The next cycle (the cursor was not stored: full again) converges; the stop was
        // for the previous call only.
        let mut caller = Caller::default();
        let mut json = ptr::null_mut();
        let status = phs_sync_cycle(
            engine,
            0,
            Some(on_progress),
            &mut caller as *mut Caller as *mut c_void,
            &mut json,
        );
        assert_eq!(status, PHS_OK, "{}", last_error());
        let report = take(json);
        assert_eq!(report["mode"], "full", "{report}");
        assert_eq!(report["ok"], true);
        assert_eq!(report["failed"], 0);
        assert_eq!(
            report["applied"].as_u64().unwrap() + report["stale"].as_u64().unwrap(),
            n as u64,
            "{report}"
        );
        assert_eq!(report["applied"], (n - synced) as u64);
        assert_eq!(caller.credentials, n as u64);
        assert_eq!(f.sign_in(&first.0, &first.1), SignInStatus::Success);
        assert_eq!(f.sign_in(&last.0, &last.1), SignInStatus::Success);
        let mut json = ptr::null_mut();
        assert_eq!(phs_sync_status(engine, &mut json), PHS_OK);
        let done = take(json)["last_cycle"].clone();
        assert_eq!(done["ok"], true, "{done}");
        assert!(done["error"].is_null());
        // Now the cursor is stored: nothing left to send.
        let mut json = ptr::null_mut();
        assert_eq!(
            phs_sync_cycle(engine, 0, None, ptr::null_mut(), &mut json),
            PHS_OK
        );
        let report = take(json);
        assert_eq!(report["mode"], "incremental");
        assert_eq!(report["changes"], 0, "{report}");
        phs_engine_free(engine);
    }
}

/// `phs_check_connection` of a config file.
fn check(config: &std::path::Path) -> serde_json::Value {
    let path = std::ffi::CString::new(config.to_str().unwrap()).unwrap();
    let mut json = std::ptr::null_mut();
    unsafe {
        assert_eq!(
            phsync::phs_check_connection(path.as_ptr(), &mut json),
            phsync::PHS_OK
        );
        take(json)
    }
}
/// (name, result) of every check, in order.
fn results(report: &serde_json::Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}
/// The detail of one check.
fn detail<'a>(report: &'a serde_json::Value, name: &str) -> &'a str {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()["detail"]
        .as_str()
        .unwrap()
}

#[test]
fn the_connection_check_passes_against_the_lab_and_names_what_is_wrong() {
    use std::ffi::CString;
    use std::ptr;

    use phsync::*;

    let names = [
        "config",
        "fips",
        "dc_reachable",
        "ldap_bind",
        "drsr_bind",
        "replication_rights",
        "tenant_reachable",
        "token_valid",
        "ca_trusted",
    ];
    let with = |results: &[&str]| -> Vec<(String, String)> {
        names
            .iter()
            .zip(results)
            .map(|(n, r)| (n.to_string(), r.to_string()))
            .collect()
    };

    let f = SyncFixture::new("check", "");
    let u = f.sam("chk");
    f.ou.add_user(&u, "Check-OnPrem-1!");
    let password = std::fs::read_to_string(f.dir.0.join("replicator.pw")).unwrap();

    // Everything the lab config needs works; a tenant file is not a service.
    let report = check(&f.config);
    let all_good = with(&[
        "passed", "passed", "passed", "passed", "passed", "passed", "passed", "skipped", "skipped",
    ]);
    assert_eq!(results(&report), all_good, "{report:#}");
    assert_eq!(report["ok"], true);
    assert!(
        detail(&report, "replication_rights").contains(&u),
        "{report:#}"
    );
    assert!(detail(&report, "token_valid").contains("not a tenant service"));
    // The tenant file the first cycle creates was not created by the check.
    assert!(detail(&report, "tenant_reachable").contains("does not exist yet"));
    assert!(!std::path::Path::new(&f.tenant_path).exists());
    f.cycle(false);
    let report = check(&f.config);
    assert_eq!(results(&report), all_good, "{report:#}");
    assert!(detail(&report, "tenant_reachable").contains("opened the tenant"));
    assert!(!report.to_string().contains(password.trim()));

    // The CLI says the same, one line per check, exit 0.
    let cli = std::process::Command::new(phsync_testkit::phsync_bin())
        .args(["check", "--config"])
        .arg(&f.config)
        .output()
        .unwrap();
    let text = String::from_utf8(cli.stdout).unwrap();
    assert_eq!(cli.status.code(), Some(0), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), names.len(), "{text}");
    for (line, name) in lines.iter().zip(names) {
        assert!(line.split_whitespace().nth(1) == Some(name), "{line}");
    }

    // A wrong replicator password: the LDAP bind fails, the DC checks after it are skipped
    // naming it; the tenant does not depend on the DC.
    let wrong = f.dir.0.join("wrong.pw");
    std::fs::write(&wrong, "Not-The-Password-9").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let text = std::fs::read_to_string(&f.config)
        .unwrap()
        .replace("replicator.pw", "wrong.pw");
    let wrong_config = f.dir.0.join("wrong.toml");
    std::fs::write(&wrong_config, text).unwrap();
    let report = check(&wrong_config);
    assert_eq!(
        results(&report),
        with(&[
            "passed", "passed", "passed", "failed", "skipped", "skipped", "passed", "skipped",
            "skipped"
        ]),
        "{report:#}"
    );
    assert_eq!(report["ok"], false);
    assert!(detail(&report, "ldap_bind").contains("invalid credentials"));
    assert_eq!(detail(&report, "drsr_bind"), "not run: ldap_bind failed");
    assert_eq!(
        detail(&report, "replication_rights"),
        "not run: ldap_bind failed"
    );
    assert!(!report.to_string().contains("Not-The-Password-9"));
    let cli = std::process::Command::new(phsync_testkit::phsync_bin())
        .args(["check", "--json", "--config"])
        .arg(&wrong_config)
        .output()
        .unwrap();
    assert_eq!(cli.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(results(&json), results(&report));

    // An account without replication rights binds, but may not read passwords.
    let alice =
        f.ou.lab
            .seed()
            .into_iter()
            .find(|a| a.sam == "alice")
            .unwrap();
    let alice_pw = f.dir.0.join("alice.pw");
    std::fs::write(&alice_pw, &alice.password).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&alice_pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let text = std::fs::read_to_string(&f.config)
        .unwrap()
        .replace("replicator.pw", "alice.pw")
        .replace("username = \"phs-replicator\"", "username = \"alice\"");
    let alice_config = f.dir.0.join("alice.toml");
    std::fs::write(&alice_config, text).unwrap();
    let report = check(&alice_config);
    assert_eq!(
        results(&report),
        with(&[
            "passed", "passed", "passed", "passed", "passed", "failed", "passed", "skipped",
            "skipped"
        ]),
        "{report:#}"
    );
    assert!(
        detail(&report, "replication_rights").contains("Replicating Directory Changes All"),
        "{report:#}"
    );

    // No config file: config fails, nothing else runs.
    let report = check(&f.dir.0.join("missing.toml"));
    let mut missing = vec![("config".to_string(), "failed".to_string())];
    missing.extend(names[1..].iter().map(|n| (n.to_string(), "skipped".into())));
    assert_eq!(results(&report), missing, "{report:#}");
    assert!(detail(&report, "config").contains("missing.toml"));
    assert_eq!(detail(&report, "ldap_bind"), "not run: config failed");

    // Only bad arguments are errors.
    let mut json = ptr::null_mut();
    unsafe {
        assert_eq!(
            phs_check_connection(ptr::null(), &mut json),
            PHS_E_NULL_ARGUMENT
        );
        let path = CString::new(f.config.to_str().unwrap()).unwrap();
        assert_eq!(
            phs_check_connection(path.as_ptr(), ptr::null_mut()),
            PHS_E_NULL_ARGUMENT
        );
    }
}

#[test]
fn a_stop_during_replication_ends_the_cycle_before_anything_is_written() {
    use std::ffi::{c_char, c_void, CStr, CString};
    use std::ptr;

    use phsync::*;

    /// Stops at the first replication batch (reported with the accounts so far, total 0).
    #[derive(Default)]
    struct Caller {
        stop: bool,
        replicate_batches: u64,
        credentials: u64,
    }
    unsafe extern "C" fn on_progress(
        context: *mut c_void,
        stage: *const c_char,
        done: u64,
        total: u64,
    ) -> i32 {
        let caller = &mut *(context as *mut Caller);
        match CStr::from_ptr(stage).to_str().unwrap() {
            "replicate" if total == 0 => {
                assert!(done > 0, "a replication batch reports the accounts so far");
                caller.replicate_batches += 1;
                i32::from(caller.stop)
            }
            "credentials" => {
                caller.credentials += 1;
                0
            }
            _ => 0,
        }
    }

    let f = SyncFixture::new("stoprep", "");
    let users: Vec<(String, String)> = (0..3)
        .map(|i| (f.sam(&format!("sr{i}")), format!("Stop-Repl-{i}!")))
        .collect();
    f.ou.add_users(&users);
    let config = CString::new(f.config.to_str().unwrap()).unwrap();
    unsafe {
        let mut engine = ptr::null_mut();
        assert_eq!(phs_engine_open(config.as_ptr(), &mut engine), PHS_OK);
        let mut caller = Caller {
            stop: true,
            ..Caller::default()
        };
        let mut json = ptr::null_mut();
        let status = phs_sync_cycle(
            engine,
            PHS_SYNC_FULL,
            Some(on_progress),
            &mut caller as *mut Caller as *mut c_void,
            &mut json,
        );
        assert_eq!(status, PHS_E_CANCELLED, "{}", last_error());
        assert!(json.is_null());
        assert_eq!(caller.replicate_batches, 1, "stopped after the first batch");
        assert_eq!(caller.credentials, 0);
        // Stopped before provisioning: the tenant has none of these users yet.
        assert!(
            f.tenant().users().unwrap().is_empty(),
            "nothing is written after a stop during replication"
        );
        let mut json = ptr::null_mut();
        assert_eq!(phs_sync_status(engine, &mut json), PHS_OK);
        let stopped = take(json)["last_cycle"].clone();
        assert_eq!(stopped["ok"], false, "{stopped}");
        assert_eq!(stopped["error"], "stopped by the caller");

        // The next cycle runs it all (full again: no cursor was stored) and converges.
        let mut caller = Caller::default();
        let mut json = ptr::null_mut();
        let status = phs_sync_cycle(
            engine,
            0,
            Some(on_progress),
            &mut caller as *mut Caller as *mut c_void,
            &mut json,
        );
        assert_eq!(status, PHS_OK, "{}", last_error());
        let report = take(json);
        assert_eq!(report["mode"], "full", "{report}");
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(report["applied"], users.len() as u64, "{report}");
        assert!(caller.replicate_batches >= 1);
        for (sam, password) in &users {
            assert_eq!(f.sign_in(sam, password), SignInStatus::Success);
        }
        phs_engine_free(engine);
    }
}

#[test]
fn the_connection_check_tests_a_tenant_service_its_token_and_its_certificate() {
    use phsync_service::tokens;
    use phsync_tenant::{self as cloud, TokenRole};
    use phsync_testkit::service::{ServiceProcess, TestPki};

    let f = SyncFixture::new("checksvc", "");
    f.ou.add_user(&f.sam("chs"), "Check-Svc-1!");
    let pki = TestPki::new(&f.dir.0);
    let service_config = f.dir.0.join("service.toml");
    std::fs::write(
        &service_config,
        "[service]\nlisten = \"127.0.0.1:0\"\nstore = \"service.db\"\ntls_cert = \"server.pem\"\ntls_key = \"server.key\"\n",
    )
    .unwrap();
    let store = cloud::open_store(f.dir.0.join("service.db").to_str().unwrap()).unwrap();
    let (_, token) =
        tokens::issue(store.as_ref(), TokenRole::Agent, "check", Some("phs.test")).unwrap();
    drop(store);
    let token_file = f.dir.0.join("agent.token");
    phsync_tenant::private_file::write_private(&token_file, token.as_bytes()).unwrap();
    let bogus_file = f.dir.0.join("bogus.token");
    phsync_tenant::private_file::write_private(&bogus_file, b"phs_not_a_token").unwrap();
    let service = ServiceProcess::start(&service_config, &[]);
    let config_with = |name: &str, token: &std::path::Path, ca: &std::path::Path| {
        let path = f.dir.0.join(name);
        let cloud = format!(
            "tenant = \"{}\"\ntoken_file = \"{}\"\nca_file = \"{}\"",
            service.url,
            token.display(),
            ca.display()
        );
        f.write_config_to(&path, "", &cloud, "state");
        path
    };
    let tail = |report: &serde_json::Value| results(report)[6..].to_vec();
    let pairs = |r: [&str; 3]| -> Vec<(String, String)> {
        ["tenant_reachable", "token_valid", "ca_trusted"]
            .iter()
            .zip(r)
            .map(|(n, r)| (n.to_string(), r.to_string()))
            .collect()
    };

    let report = check(&config_with("good.toml", &token_file, &pki.ca_file));
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(tail(&report), pairs(["passed", "passed", "passed"]));
    assert!(!report.to_string().contains(token.as_str()));

    // A CA the service's certificate does not chain to: named; the token is not tried.
    let report = check(&config_with(
        "other-ca.toml",
        &token_file,
        &pki.other_ca_file,
    ));
    assert_eq!(
        tail(&report),
        pairs(["passed", "skipped", "failed"]),
        "{report:#}"
    );
    assert!(
        detail(&report, "ca_trusted").contains("UnknownIssuer"),
        "{report:#}"
    );
    assert!(detail(&report, "ca_trusted").contains("other-ca.pem"));
    assert_eq!(detail(&report, "token_valid"), "not run: ca_trusted failed");

    // A token the service does not know.
    let report = check(&config_with("bogus.toml", &bogus_file, &pki.ca_file));
    assert_eq!(
        tail(&report),
        pairs(["passed", "failed", "passed"]),
        "{report:#}"
    );
    assert!(!report.to_string().contains("phs_not_a_token"));

    // The service is gone.
    drop(service);
    let report = check(&f.dir.0.join("good.toml"));
    assert_eq!(
        tail(&report),
        pairs(["failed", "skipped", "skipped"]),
        "{report:#}"
    );
    assert_eq!(
        detail(&report, "ca_trusted"),
        "not run: tenant_reachable failed"
    );
}

/// An engine handle shared with the thread that runs it (`phs_engine_run` there,
/// `phs_engine_stop` here: the one pair of calls the header allows at once).
#[derive(Clone, Copy)]
struct Shared(*mut phsync::phs_engine);
// SAFETY: the header allows `phs_engine_stop` from any thread while `phs_engine_run` runs on
// another; nothing else touches the handle until the run thread is joined.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

/// Stops the run when dropped (also when the test panics), so the run thread ends.
struct StopOnDrop(Shared);
impl Drop for StopOnDrop {
    fn drop(&mut self) {
        // SAFETY: the handle is live until the run thread is joined, after this guard drops.
        unsafe { phsync::phs_engine_stop(self.0 .0) };
    }
}

/// `phs_sync_status` through a second handle on the same config (the running one is busy).
fn status_of(config: &std::ffi::CStr) -> serde_json::Value {
    use phsync::*;
    unsafe {
        let mut other = std::ptr::null_mut();
        assert_eq!(phs_engine_open(config.as_ptr(), &mut other), PHS_OK);
        let mut json = std::ptr::null_mut();
        assert_eq!(
            phs_sync_status(other, &mut json),
            PHS_OK,
            "{}",
            last_error()
        );
        phs_engine_free(other);
        take(json)
    }
}

/// Wait until `ok`, at most `bound`; the time it took.
fn within(
    bound: std::time::Duration,
    what: &str,
    mut ok: impl FnMut() -> bool,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    while !ok() {
        assert!(started.elapsed() < bound, "not within {bound:?}: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    started.elapsed()
}

#[test]
fn phs_engine_run_syncs_changes_within_seconds_until_phs_engine_stop_from_another_thread() {
    use std::ffi::CString;
    use std::ptr;
    use std::time::{Duration, Instant};

    use phsync::*;

    unsafe {
        assert_eq!(phs_engine_run(ptr::null_mut()), PHS_E_NULL_ARGUMENT);
        assert!(last_error().contains("engine"), "{}", last_error());
        assert_eq!(phs_engine_stop(ptr::null()), PHS_E_NULL_ARGUMENT);
    }

    let f = SyncFixture::new("cabirun", "");
    let u = f.sam("runa");
    f.ou.add_user(&u, "Run-Old-Pass-1!");
    let config = CString::new(f.config.to_str().unwrap()).unwrap();
    let mut engine = ptr::null_mut();
    unsafe { assert_eq!(phs_engine_open(config.as_ptr(), &mut engine), PHS_OK) };
    let handle = Shared(engine);

    let (status, stopped_in) = std::thread::scope(|s| {
        let guard = StopOnDrop(handle);
        let run = s.spawn(move || {
            let h = handle;
            // SAFETY: a live handle; only phs_engine_stop is called on it meanwhile.
            let status = unsafe { phs_engine_run(h.0) };
            (status, last_error())
        });
        // The first cycle, then the notification search live.
        within(Duration::from_secs(60), "the first cycle", || {
            f.sign_in(&u, "Run-Old-Pass-1!") == SignInStatus::Success
        });
        within(Duration::from_secs(10), "notifications connected", || {
            status_of(&config)["notifications"]["live"] == true
        });
        // Passwords are delivered while replication runs, so a user signs in before the
        // cycle that synced them has ended and stored its outcome.
        within(Duration::from_secs(30), "the first cycle's outcome", || {
            !status_of(&config)["last_cycle"].is_null()
        });
        let st = status_of(&config);
        let n = &st["notifications"];
        assert_eq!(n["state"], "connected", "{st:#}");
        assert!(n["detail"].as_str().unwrap().starts_with("ldap"), "{n}");
        phsync_tenant::Timestamp::parse_rfc3339(n["since"].as_str().unwrap()).unwrap();
        assert_eq!(st["last_cycle"]["ok"], true, "{st:#}");

        // A password changed over LDAP reaches the tenant within 5 s, from the notification.
        f.ou.set_password(&u, "Run-New-Pass-2!");
        let took = within(Duration::from_secs(5), "the changed password", || {
            f.sign_in(&u, "Run-New-Pass-2!") == SignInStatus::Success
                && f.sign_in(&u, "Run-Old-Pass-1!") == SignInStatus::InvalidCredentials
        });
        println!(
            "{u}: new password in the tenant {} ms after the modify",
            took.as_millis()
        );
        let st = status_of(&config);
        assert!(
            !st["notifications"]["last_notification_at"].is_null(),
            "{st:#}"
        );

        // Stop from this thread: the run returns PHS_OK promptly.
        let t0 = Instant::now();
        drop(guard);
        let (status, message) = run.join().unwrap();
        assert_eq!(status, PHS_OK, "{message}");
        (status, t0.elapsed())
    });
    assert_eq!(status, PHS_OK);
    assert!(
        stopped_in < Duration::from_secs(5),
        "phs_engine_run returned {stopped_in:?} after phs_engine_stop"
    );
    let st = status_of(&config);
    assert_eq!(st["notifications"]["state"], "stopped", "{st:#}");
    assert_eq!(st["notifications"]["live"], false);

    unsafe {
        // A stop before the run is kept: the run returns at once, without a cycle, and the
        // stop is consumed (a second stop-then-run does the same).
        for _ in 0..2 {
            assert_eq!(phs_engine_stop(engine), PHS_OK);
            let t0 = Instant::now();
            assert_eq!(phs_engine_run(engine), PHS_OK, "{}", last_error());
            assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        }
        // Start and stop events: two per run.
        let ids = [601u16, 602];
        let mut json = ptr::null_mut();
        assert_eq!(
            phs_events(config.as_ptr(), ids.as_ptr(), 2, i64::MIN, 0, &mut json),
            PHS_OK
        );
        let events = take(json);
        let ids: Vec<u64> = events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, [601, 602, 601, 602, 601, 602], "{events:#}");
        // A pending stop is discarded by phs_sync_cycle (its stops are per call).
        assert_eq!(phs_engine_stop(engine), PHS_OK);
        let mut json = ptr::null_mut();
        assert_eq!(
            phs_sync_cycle(engine, 0, None, ptr::null_mut(), &mut json),
            PHS_OK,
            "{}",
            last_error()
        );
        assert_eq!(take(json)["ok"], true);
        phs_engine_free(engine);
    }
}
