//! The sync engine end to end: a real Samba AD DC, the MS-DRSR client, a tenant file.
//! Each test scopes the engine to an OU of its own (phsync_testkit::ad::TestOu).

use std::collections::BTreeSet;

use phsync_engine::state::SyncStatus;
use phsync_tenant::SignInStatus;
use phsync_testkit::sync_fixture::SyncFixture;

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
        Err(phsync_engine::SyncError::UserNotFound(_)) => {}
        other => panic!("{other:?}"),
    }
}

/// A stop ends a cycle whose scope read hangs (a 100,000-user domain's read takes tens of
/// seconds; here a black hole that accepts the LDAP connection and never answers) about a
/// second after it is requested, not when the read times out (60 s here): the read is
/// abandoned, the cycle reports stopped, and the next cycle against the DC converges.
#[test]
fn a_stop_ends_a_hanging_scope_read_after_its_grace_second() {
    use std::time::{Duration, Instant};
    let f = SyncFixture::new("stopscope", "");
    let sam = f.sam("ss1");
    f.ou.add_user(&sam, "Stop-Scope-1!");
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let original = std::fs::read_to_string(&f.config).unwrap();
    let ldap_line = format!("ldap_url = \"{}\"", f.ou.lab.ldaps_url);
    assert!(original.contains(&ldap_line));
    let stalled = original.replace(
        &ldap_line,
        &format!(
            "ldap_url = \"ldaps://127.0.0.1:{}\"\ntimeout_seconds = 60",
            hole.local_addr().unwrap().port()
        ),
    );
    std::fs::write(&f.config, stalled).unwrap();

    let mut engine = f.engine();
    let stop = engine.stop_flag();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        Instant::now()
    });
    let result = engine.cycle(true, &mut |_, _, _| {});
    let ended = Instant::now();
    let requested = stopper.join().unwrap();
    assert!(
        matches!(result, Err(phsync_engine::SyncError::Interrupted)),
        "{result:?}"
    );
    let took = ended.saturating_duration_since(requested);
    assert!(
        took < Duration::from_secs(5),
        "the stop took {took:?}; the LDAP timeout is 60 s"
    );
    let last = engine.last_cycle().unwrap().unwrap();
    assert!(!last.ok);
    assert!(
        last.error
            .as_deref()
            .unwrap_or_default()
            .contains("stopped"),
        "{last:?}"
    );
    assert_eq!(
        f.sign_in(&sam, "Stop-Scope-1!"),
        SignInStatus::InvalidCredentials
    );
    drop(hole);

    std::fs::write(&f.config, original).unwrap();
    let report = f.cycle(true);
    assert_eq!(report.in_scope, 1, "{report:?}");
    assert_eq!(f.sign_in(&sam, "Stop-Scope-1!"), SignInStatus::Success);
}
