//! The sync engine end to end: a real Samba AD DC, the MS-DRSR client, a tenant file.
//! Each test scopes the engine to an OU of its own (common::ad::TestOu).

mod common;

use std::collections::BTreeSet;

use common::sync_fixture::SyncFixture;
use phsync::cloud::SignInStatus;
use phsync::sync::state::SyncStatus;

#[test]
fn full_sync_lets_exactly_the_in_scope_users_sign_in_and_incremental_sends_only_changes() {
    let f = SyncFixture::new("full", "");
    let (a, b, c) = (f.sam("ann"), f.sam("ben"), f.sam("cid"));
    let (off, inet, pc) = (f.sam("off"), f.sam("inet"), f.sam("pc"));
    f.ou.add_user(&a, "Ann-OnPrem-1!");
    f.ou.add_user(&b, "Ben-OnPrem-1!");
    f.ou.add_user(&c, "Cid-OnPrem-1!");
    f.ou.add_user(&off, "Off-OnPrem-1!");
    f.ou.set_uac(&off, 514);
    f.ou.add_inet_org_person(&inet, "Inet-OnPrem-1!");
    f.ou.add_computer(&pc, "Pc-OnPrem-1!xyz");

    let report = f.cycle(false);
    assert_eq!(report.mode, "full");
    assert_eq!(report.in_scope, 3, "{report:?}");
    assert_eq!(report.applied, 3);
    assert!(report.ok);
    assert_eq!(f.sign_in(&a, "Ann-OnPrem-1!"), SignInStatus::Success);
    assert_eq!(f.sign_in(&b, "Ben-OnPrem-1!"), SignInStatus::Success);
    assert_eq!(f.sign_in(&c, "Cid-OnPrem-1!"), SignInStatus::Success);
    for (sam, pw) in [
        (&off, "Off-OnPrem-1!"),
        (&inet, "Inet-OnPrem-1!"),
        (&pc, "Pc-OnPrem-1!xyz"),
    ] {
        assert_eq!(
            f.sign_in(sam, pw),
            SignInStatus::InvalidCredentials,
            "{sam} must not sign in"
        );
    }
    let upns: BTreeSet<String> = f
        .tenant()
        .users()
        .unwrap()
        .into_iter()
        .map(|u| u.user_principal_name)
        .collect();
    assert_eq!(
        upns,
        [&a, &b, &c]
            .iter()
            .map(|s| f.ou.upn(s))
            .collect::<BTreeSet<_>>()
    );

    // Two on-prem changes: the next cycle sends exactly those two.
    f.ou.set_password(&a, "Ann-OnPrem-2!");
    f.ou.set_password(&c, "Cid-OnPrem-2!");
    let report = f.cycle(false);
    assert_eq!(report.mode, "incremental");
    assert_eq!(report.applied, 2, "{report:?}");
    let changed: BTreeSet<&str> = report
        .users
        .iter()
        .map(|u| u.sam_account_name.as_str())
        .collect();
    assert_eq!(changed, [a.as_str(), c.as_str()].into_iter().collect());
    assert_eq!(f.sign_in(&a, "Ann-OnPrem-2!"), SignInStatus::Success);
    assert_eq!(
        f.sign_in(&a, "Ann-OnPrem-1!"),
        SignInStatus::InvalidCredentials
    );
    assert_eq!(f.sign_in(&c, "Cid-OnPrem-2!"), SignInStatus::Success);
    assert_eq!(f.sign_in(&b, "Ben-OnPrem-1!"), SignInStatus::Success);

    // Nothing changed: nothing sent.
    let report = f.cycle(false);
    assert_eq!((report.changes, report.applied), (0, 0), "{report:?}");
}

#[test]
fn an_admin_reset_in_the_cloud_is_overridden_by_the_next_onprem_change() {
    let f = SyncFixture::new("reset", "");
    let u = f.sam("rita");
    f.ou.add_user(&u, "Rita-OnPrem-1!");
    f.cycle(false);
    let pw: Vec<u16> = "Cloud-Admin-Set-7".encode_utf16().collect();
    f.tenant().set_password(&f.ou.upn(&u), &pw, false).unwrap();
    assert_eq!(f.sign_in(&u, "Cloud-Admin-Set-7"), SignInStatus::Success);
    assert_eq!(
        f.sign_in(&u, "Rita-OnPrem-1!"),
        SignInStatus::InvalidCredentials
    );

    // A resync of the old on-prem password does not undo the reset...
    let report = f.cycle(true);
    assert_eq!(report.stale, 1, "{report:?}");
    assert_eq!(f.sign_in(&u, "Cloud-Admin-Set-7"), SignInStatus::Success);
    // ...the next on-prem change does. (AD's originating change times have one-second
    // resolution: a change in the same second as the reset would look older.)
    std::thread::sleep(std::time::Duration::from_millis(1100));
    f.ou.set_password(&u, "Rita-OnPrem-2!");
    let report = f.cycle(false);
    assert_eq!(report.applied, 1, "{report:?}");
    assert_eq!(f.sign_in(&u, "Rita-OnPrem-2!"), SignInStatus::Success);
    assert_eq!(
        f.sign_in(&u, "Cloud-Admin-Set-7"),
        SignInStatus::InvalidCredentials
    );
}

#[test]
fn must_change_passwords_are_filtered_unless_temporary_passwords_are_synced() {
    let f = SyncFixture::new("must", "");
    let u = f.sam("mona");
    f.ou.add_user(&u, "Mona-Temp-Pass1");
    f.ou.set_must_change(&u);
    let report = f.cycle(false);
    let d = report
        .users
        .iter()
        .find(|d| d.sam_account_name == u)
        .unwrap();
    assert_eq!(d.status, SyncStatus::FilteredByTarget);
    assert_eq!(report.filtered, 1);
    assert_eq!(
        f.sign_in(&u, "Mona-Temp-Pass1"),
        SignInStatus::InvalidCredentials
    );
    let status = f.engine().user_status(&u).unwrap().unwrap();
    assert_eq!(status.user.status, SyncStatus::FilteredByTarget);
    assert!(status.user.reason.contains("sync_temporary_passwords"));

    f.write_config("sync_temporary_passwords = true");
    let d = f.engine().sync_user(&u).unwrap();
    assert_eq!(d.status, SyncStatus::Success, "{d:?}");
    assert_eq!(
        f.sign_in(&u, "Mona-Temp-Pass1"),
        SignInStatus::MustChangePassword
    );
}

#[test]
fn disabling_a_user_onprem_disables_them_in_the_tenant() {
    let f = SyncFixture::new("dis", "");
    let u = f.sam("dora");
    let keep = f.sam("kept");
    f.ou.add_user(&u, "Dora-OnPrem-1!");
    f.ou.add_user(&keep, "Kept-OnPrem-1!");
    f.cycle(false);
    assert_eq!(f.sign_in(&u, "Dora-OnPrem-1!"), SignInStatus::Success);
    f.ou.set_uac(&u, 514);
    let report = f.cycle(false);
    assert_eq!(report.disabled, 1, "{report:?}");
    assert_eq!(
        f.sign_in(&u, "Dora-OnPrem-1!"),
        SignInStatus::AccountDisabled
    );
    assert!(!f.tenant().user(&f.ou.upn(&u)).unwrap().unwrap().enabled);
    assert_eq!(f.sign_in(&keep, "Kept-OnPrem-1!"), SignInStatus::Success);
    // A password change while out of scope is not sent...
    f.ou.set_password(&u, "Dora-OnPrem-2!");
    f.cycle(false);
    assert_eq!(
        f.sign_in(&u, "Dora-OnPrem-2!"),
        SignInStatus::InvalidCredentials
    );
    // ...but re-enabled on-prem, the user is enabled again with the current password.
    f.ou.set_uac(&u, 512);
    let report = f.cycle(false);
    assert_eq!(report.applied, 1, "{report:?}");
    assert_eq!(f.sign_in(&u, "Dora-OnPrem-2!"), SignInStatus::Success);
    assert_eq!(
        f.sign_in(&u, "Dora-OnPrem-1!"),
        SignInStatus::InvalidCredentials
    );
}

#[test]
fn sync_one_user_and_diagnostics() {
    let f = SyncFixture::new("one", "");
    let u = f.sam("olga");
    f.ou.add_user(&u, "Olga-OnPrem-1!");
    let d = f
        .engine()
        .sync_user(&format!("{}\\{u}", f.ou.lab.domain))
        .unwrap();
    assert_eq!(d.status, SyncStatus::Success);
    assert!(d.applied_at.is_some());
    assert_eq!(f.sign_in(&u, "Olga-OnPrem-1!"), SignInStatus::Success);
    let status = f.engine().user_status(&f.ou.upn(&u)).unwrap().unwrap();
    assert_eq!(status.user.sam_account_name, u);
    assert!(!status.history.is_empty());
    // Out of scope (a seeded user in another OU): filtered, with the reason.
    let d = f.engine().sync_user("alice").unwrap();
    assert_eq!(d.status, SyncStatus::FilteredByTarget);
    assert!(d.reason.contains("scope"));
    match f.engine().sync_user("no-such-user-xyz") {
        Err(phsync::sync::SyncError::UserNotFound(_)) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_engine_through_the_c_abi() {
    use std::ffi::{c_char, c_void, CStr, CString};
    use std::ptr;

    use phsync::ffi::*;

    unsafe extern "C" fn on_progress(
        context: *mut c_void,
        stage: *const c_char,
        done: u64,
        total: u64,
    ) {
        let seen = &mut *(context as *mut Vec<(String, u64, u64)>);
        seen.push((
            CStr::from_ptr(stage).to_string_lossy().into_owned(),
            done,
            total,
        ));
    }
    unsafe fn take(p: *mut c_char) -> serde_json::Value {
        let v = serde_json::from_str(CStr::from_ptr(p).to_str().unwrap()).unwrap();
        phs_string_free(p);
        v
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
        assert!(seen.iter().all(|(_, done, total)| done <= total));

        let name = CString::new(u.clone()).unwrap();
        let mut json = ptr::null_mut();
        assert_eq!(phs_user_status(engine, name.as_ptr(), &mut json), PHS_OK);
        let st = take(json);
        assert_eq!(st["status"], "Success");
        assert!(!st["history"].as_array().unwrap().is_empty());
        let mut json = ptr::null_mut();
        assert_eq!(phs_sync_status(engine, &mut json), PHS_OK);
        let all = take(json);
        assert_eq!(all["last_cycle"]["summary"]["applied"], 1);
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
