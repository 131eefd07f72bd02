//! The tenant rules of phs-spec.md §2, run against every store in `phsync_testkit::tenant`.

use std::time::{Duration, Instant};

use phsync_tenant::{CloudError, CredentialOutcome, PasswordSource, SignInStatus, TenantSettings};
use phsync_testkit::tenant::*;

const DAY: i64 = 86_400;

fn sign_in(t: &TestTenant, upn: &str, pw: &str) -> SignInStatus {
    t.tenant.sign_in(upn, &utf16(pw)).unwrap().result
}

#[test]
fn stale_credentials_are_rejected_in_both_orders() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        provision(tn, "anchor-a", "a@phs.test");
        provision(tn, "anchor-b", "b@phs.test");
        let (t1, t2) = (T0.plus_seconds(-100), T0.plus_seconds(-50));

        // Newer first, then older: the older is stale and changes nothing.
        assert_eq!(
            tn.apply_synced_credential(&synced("anchor-a", "Newer-1", t2, false))
                .unwrap(),
            CredentialOutcome::Applied
        );
        assert_eq!(
            tn.apply_synced_credential(&synced("anchor-a", "Older-1", t1, false))
                .unwrap(),
            CredentialOutcome::Stale {
                current_changed_at: t2
            },
            "{}",
            t.name
        );
        assert_eq!(sign_in(&t, "a@phs.test", "Newer-1"), SignInStatus::Success);
        assert_eq!(
            sign_in(&t, "a@phs.test", "Older-1"),
            SignInStatus::InvalidCredentials
        );

        // Older first, then newer: both apply, the newer wins.
        assert_eq!(
            tn.apply_synced_credential(&synced("anchor-b", "Older-2", t1, false))
                .unwrap(),
            CredentialOutcome::Applied
        );
        assert_eq!(
            tn.apply_synced_credential(&synced("anchor-b", "Newer-2", t2, false))
                .unwrap(),
            CredentialOutcome::Applied
        );
        assert_eq!(sign_in(&t, "b@phs.test", "Newer-2"), SignInStatus::Success);
        assert_eq!(
            sign_in(&t, "b@phs.test", "Older-2"),
            SignInStatus::InvalidCredentials
        );

        // The same change time again is not newer: stale.
        assert!(matches!(
            tn.apply_synced_credential(&synced("anchor-b", "Same-2", t2, false))
                .unwrap(),
            CredentialOutcome::Stale { .. }
        ));
        let audit = tn.audit_log(100).unwrap();
        assert_eq!(
            audit
                .iter()
                .filter(|a| a.action == "password.sync" && a.outcome == "stale")
                .count(),
            2
        );
    }
}

#[test]
fn admin_reset_overrides_sync_until_the_next_onprem_change() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        provision(tn, "anchor-r", "reset@phs.test");
        let before = T0.plus_seconds(-3600);
        tn.apply_synced_credential(&synced("anchor-r", "OnPrem-1", before, false))
            .unwrap();

        t.clock.advance_seconds(10);
        tn.set_password("reset@phs.test", &utf16("Admin-Chose-9!"), false)
            .unwrap();
        assert_eq!(
            sign_in(&t, "reset@phs.test", "Admin-Chose-9!"),
            SignInStatus::Success
        );
        assert_eq!(
            sign_in(&t, "reset@phs.test", "OnPrem-1"),
            SignInStatus::InvalidCredentials
        );
        let user = tn.user("reset@phs.test").unwrap().unwrap();
        assert_eq!(user.password.unwrap().source, PasswordSource::Cloud);

        // A late retry of a change made before the reset is stale.
        let late = synced("anchor-r", "OnPrem-Late", before.plus_seconds(5), false);
        assert!(matches!(
            tn.apply_synced_credential(&late).unwrap(),
            CredentialOutcome::Stale { .. }
        ));
        assert_eq!(
            sign_in(&t, "reset@phs.test", "Admin-Chose-9!"),
            SignInStatus::Success
        );

        // The next on-prem change (after the reset) wins again.
        t.clock.advance_seconds(60);
        let next = synced("anchor-r", "OnPrem-2", t.clock_now(), false);
        assert_eq!(
            tn.apply_synced_credential(&next).unwrap(),
            CredentialOutcome::Applied
        );
        assert_eq!(
            sign_in(&t, "reset@phs.test", "OnPrem-2"),
            SignInStatus::Success
        );
        assert_eq!(
            sign_in(&t, "reset@phs.test", "Admin-Chose-9!"),
            SignInStatus::InvalidCredentials
        );
    }
}

trait ClockNow {
    fn clock_now(&self) -> phsync_tenant::Timestamp;
}
impl ClockNow for TestTenant {
    fn clock_now(&self) -> phsync_tenant::Timestamp {
        use phsync_tenant::Clock;
        self.clock.now()
    }
}

#[test]
fn synced_passwords_never_expire_unless_cloud_policy_is_applied() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        provision(tn, "anchor-e", "expiry@phs.test");
        tn.apply_synced_credential(&synced("anchor-e", "OnPrem-Exp", T0, false))
            .unwrap();
        assert_eq!(
            tn.user("expiry@phs.test")
                .unwrap()
                .unwrap()
                .password
                .unwrap()
                .expires_at,
            None
        );

        t.clock.advance_seconds(200 * DAY);
        assert_eq!(
            sign_in(&t, "expiry@phs.test", "OnPrem-Exp"),
            SignInStatus::Success
        );

        let mut settings = tn.settings().unwrap();
        settings.apply_cloud_password_policy_to_synced = true;
        tn.update_settings(&settings).unwrap();
        let info = tn
            .user("expiry@phs.test")
            .unwrap()
            .unwrap()
            .password
            .unwrap();
        assert_eq!(info.expires_at, Some(T0.plus_seconds(90 * DAY)));
        assert_eq!(
            sign_in(&t, "expiry@phs.test", "OnPrem-Exp"),
            SignInStatus::PasswordExpired
        );
        // A wrong password still reads as a wrong password, not as "expired".
        assert_eq!(
            sign_in(&t, "expiry@phs.test", "nope"),
            SignInStatus::InvalidCredentials
        );
    }
}

#[test]
fn cloud_set_passwords_expire_and_can_be_changed() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        tn.add_cloud_user("carl@phs.test", Some("Carl")).unwrap();
        let set = tn
            .set_password("carl@phs.test", &utf16("First-Passw0rd"), false)
            .unwrap();
        assert_eq!(set.password_expires_at, Some(T0.plus_seconds(90 * DAY)));
        t.clock.advance_seconds(89 * DAY);
        assert_eq!(
            sign_in(&t, "carl@phs.test", "First-Passw0rd"),
            SignInStatus::Success
        );
        t.clock.advance_seconds(2 * DAY);
        assert_eq!(
            sign_in(&t, "carl@phs.test", "First-Passw0rd"),
            SignInStatus::PasswordExpired
        );

        let changed = tn
            .change_password(
                "carl@phs.test",
                &utf16("First-Passw0rd"),
                &utf16("Second-Passw0rd"),
            )
            .unwrap();
        assert_eq!(changed.result, SignInStatus::Success);
        assert!(changed.session_token.is_some());
        assert_eq!(
            sign_in(&t, "carl@phs.test", "Second-Passw0rd"),
            SignInStatus::Success
        );
        assert_eq!(
            sign_in(&t, "carl@phs.test", "First-Passw0rd"),
            SignInStatus::InvalidCredentials
        );
        // A wrong old password changes nothing.
        let refused = tn
            .change_password(
                "carl@phs.test",
                &utf16("Wrong-0ld-pass"),
                &utf16("Third-Passw0rd"),
            )
            .unwrap();
        assert_eq!(refused.result, SignInStatus::InvalidCredentials);
        assert_eq!(
            sign_in(&t, "carl@phs.test", "Second-Passw0rd"),
            SignInStatus::Success
        );
    }
}

#[test]
fn complexity_applies_only_to_cloud_set_passwords() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        provision(tn, "anchor-w", "weak@phs.test");
        // On-prem policy wins for synced users: any on-prem-valid password works.
        tn.apply_synced_credential(&synced("anchor-w", "abc", T0, false))
            .unwrap();
        assert_eq!(sign_in(&t, "weak@phs.test", "abc"), SignInStatus::Success);

        for bad in ["abc", "alllowercaseletters", "Weak-Passw0rd-weak"] {
            match tn.set_password("weak@phs.test", &utf16(bad), false) {
                Err(CloudError::PolicyViolation(reasons)) => assert!(!reasons.is_empty()),
                other => panic!("{bad}: expected a policy violation, got {other:?}"),
            }
        }
        // The rejected resets changed nothing.
        assert_eq!(sign_in(&t, "weak@phs.test", "abc"), SignInStatus::Success);
        tn.add_cloud_user("cloudonly@phs.test", None).unwrap();
        assert!(matches!(
            tn.set_password("cloudonly@phs.test", &utf16("short"), false),
            Err(CloudError::PolicyViolation(_))
        ));
        assert!(matches!(
            tn.change_password("weak@phs.test", &utf16("abc"), &utf16("weaker")),
            Err(CloudError::PolicyViolation(_))
        ));
        assert!(matches!(
            tn.set_password(
                "weak@phs.test",
                &[0x41, 0xD800, 0x61, 0x31, 0x21, 0x42, 0x43, 0x44, 0x45],
                false
            ),
            Err(CloudError::InvalidPassword(_))
        ));
    }
}

/// Median wall time of each closure over `rounds` rounds, run round-robin so drift in
/// machine load hits all of them alike.
fn medians(rounds: usize, fs: &mut [&mut dyn FnMut()]) -> Vec<Duration> {
    let mut times = vec![Vec::with_capacity(rounds); fs.len()];
    for _ in 0..rounds {
        for (f, t) in fs.iter_mut().zip(times.iter_mut()) {
            let start = Instant::now();
            f();
            t.push(start.elapsed());
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort();
            t[rounds / 2]
        })
        .collect()
}

#[test]
fn unknown_user_and_wrong_password_are_indistinguishable() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        let mut settings = tn.settings().unwrap();
        settings.lockout_threshold = 1000;
        tn.update_settings(&settings).unwrap();
        provision(tn, "anchor-s", "synced@phs.test");
        tn.apply_synced_credential(&synced("anchor-s", "Synced-Secret-1", T0, false))
            .unwrap();
        tn.add_cloud_user("cloud@phs.test", None).unwrap();
        tn.set_password("cloud@phs.test", &utf16("Tenant-Secret-1"), false)
            .unwrap();

        let answer = |upn: &str| {
            let mut v =
                serde_json::to_value(tn.sign_in(upn, &utf16("Wrong-Guess-7")).unwrap()).unwrap();
            v.as_object_mut().unwrap().remove("user_principal_name");
            v
        };
        let unknown = answer("nobody@phs.test");
        assert_eq!(unknown, answer("synced@phs.test"));
        assert_eq!(unknown, answer("cloud@phs.test"));
        assert_eq!(unknown["result"], "invalid_credentials");

        let attempt =
            |upn: &'static str| move || drop(tn.sign_in(upn, &utf16("Wrong-Guess-7")).unwrap());
        let m = medians(
            21,
            &mut [
                &mut attempt("nobody@phs.test"),
                &mut attempt("synced@phs.test"),
                &mut attempt("cloud@phs.test"),
            ],
        );
        let (u, s, c) = (m[0], m[1], m[2]);
        for (name, d) in [("synced", s), ("cloud", c)] {
            let ratio = d.as_secs_f64() / u.as_secs_f64();
            assert!(
                (0.5..2.0).contains(&ratio),
                "{}: wrong password for a {name} user takes {d:?}, unknown user {u:?}",
                t.name
            );
        }
    }
}

#[test]
fn smart_lockout_counts_distinct_failures_and_resets_on_success() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        let settings = TenantSettings {
            lockout_threshold: 3,
            lockout_duration_seconds: 60,
            lockout_window_seconds: 600,
            ..tn.settings().unwrap()
        };
        tn.update_settings(&settings).unwrap();
        provision(tn, "anchor-l", "lock@phs.test");
        tn.apply_synced_credential(&synced("anchor-l", "Right-Passw0rd", T0, false))
            .unwrap();

        // The same wrong password repeated counts once.
        for _ in 0..5 {
            assert_eq!(
                sign_in(&t, "lock@phs.test", "wrong-1"),
                SignInStatus::InvalidCredentials
            );
        }
        assert_eq!(
            sign_in(&t, "lock@phs.test", "Right-Passw0rd"),
            SignInStatus::Success
        );

        // Success reset the counter: two more failures do not lock.
        assert_eq!(
            sign_in(&t, "lock@phs.test", "wrong-1"),
            SignInStatus::InvalidCredentials
        );
        assert_eq!(
            sign_in(&t, "lock@phs.test", "wrong-2"),
            SignInStatus::InvalidCredentials
        );
        assert_eq!(
            sign_in(&t, "lock@phs.test", "Right-Passw0rd"),
            SignInStatus::Success
        );

        // Three distinct failures lock, even against the right password.
        for pw in ["wrong-1", "wrong-2", "wrong-3"] {
            assert_eq!(
                sign_in(&t, "lock@phs.test", pw),
                SignInStatus::InvalidCredentials
            );
        }
        assert_eq!(
            sign_in(&t, "lock@phs.test", "Right-Passw0rd"),
            SignInStatus::LockedOut
        );
        assert!(tn
            .user("lock@phs.test")
            .unwrap()
            .unwrap()
            .locked_until
            .is_some());
        t.clock.advance_seconds(61);
        assert_eq!(
            sign_in(&t, "lock@phs.test", "Right-Passw0rd"),
            SignInStatus::Success
        );

        // Failures outside the window do not add up.
        assert_eq!(
            sign_in(&t, "lock@phs.test", "wrong-1"),
            SignInStatus::InvalidCredentials
        );
        assert_eq!(
            sign_in(&t, "lock@phs.test", "wrong-2"),
            SignInStatus::InvalidCredentials
        );
        t.clock.advance_seconds(601);
        assert_eq!(
            sign_in(&t, "lock@phs.test", "wrong-3"),
            SignInStatus::InvalidCredentials
        );
        assert_eq!(
            sign_in(&t, "lock@phs.test", "Right-Passw0rd"),
            SignInStatus::Success
        );

        // An unknown user locks the same way, so lockout reveals nothing.
        for pw in ["wrong-1", "wrong-2", "wrong-3"] {
            assert_eq!(
                sign_in(&t, "ghost@phs.test", pw),
                SignInStatus::InvalidCredentials
            );
        }
        assert_eq!(
            sign_in(&t, "ghost@phs.test", "anything"),
            SignInStatus::LockedOut
        );
    }
}

#[test]
fn sessions_survive_a_synced_change_but_not_a_reset() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        provision(tn, "anchor-x", "sess@phs.test");
        tn.apply_synced_credential(&synced("anchor-x", "Old-Passw0rd", T0, false))
            .unwrap();
        let signed_in = tn.sign_in("sess@phs.test", &utf16("Old-Passw0rd")).unwrap();
        let token = signed_in.session_token.unwrap();
        assert_eq!(
            tn.validate_session(&token)
                .unwrap()
                .unwrap()
                .user_principal_name,
            "sess@phs.test"
        );

        // A synced change: the session stays, the old password stops working.
        tn.apply_synced_credential(&synced(
            "anchor-x",
            "New-Passw0rd",
            T0.plus_seconds(5),
            false,
        ))
        .unwrap();
        assert!(tn.validate_session(&token).unwrap().is_some());
        assert_eq!(
            sign_in(&t, "sess@phs.test", "Old-Passw0rd"),
            SignInStatus::InvalidCredentials
        );
        assert_eq!(
            sign_in(&t, "sess@phs.test", "New-Passw0rd"),
            SignInStatus::Success
        );
        // An administrator's reset ends every session of the user.
        tn.set_password("sess@phs.test", &utf16("Admin-Set-Passw0rd"), false)
            .unwrap();
        assert!(tn.validate_session(&token).unwrap().is_none());
        assert!(tn.validate_session("not-a-token").unwrap().is_none());
        let reset = tn.audit_log(1).unwrap().remove(0);
        assert_eq!(reset.action, "password.reset");
        assert_eq!(reset.detail.as_deref(), Some("2 session(s) ended"));

        // Sessions end at their lifetime, and when the account is disabled.
        let token = tn
            .sign_in("sess@phs.test", &utf16("Admin-Set-Passw0rd"))
            .unwrap()
            .session_token
            .unwrap();
        t.clock.advance_seconds(86_401);
        assert!(tn.validate_session(&token).unwrap().is_none());
        let second = tn
            .sign_in("sess@phs.test", &utf16("Admin-Set-Passw0rd"))
            .unwrap();
        let second = second.session_token.unwrap();
        assert!(tn.validate_session(&second).unwrap().is_some());
        tn.provision_synced_user(&phsync_tenant::SyncedUserSpec {
            source_anchor: "anchor-x".into(),
            user_principal_name: "sess@phs.test".into(),
            display_name: None,
            enabled: false,
        })
        .unwrap();
        assert!(tn.validate_session(&second).unwrap().is_none());
    }
}

#[test]
fn a_users_own_change_keeps_only_the_new_session() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        tn.add_cloud_user("own@phs.test", None).unwrap();
        tn.set_password("own@phs.test", &utf16("First-Passw0rd"), false)
            .unwrap();
        let phone = tn
            .sign_in("own@phs.test", &utf16("First-Passw0rd"))
            .unwrap()
            .session_token
            .unwrap();
        let laptop = tn
            .sign_in("own@phs.test", &utf16("First-Passw0rd"))
            .unwrap()
            .session_token
            .unwrap();
        let changed = tn
            .change_password(
                "own@phs.test",
                &utf16("First-Passw0rd"),
                &utf16("Second-Passw0rd"),
            )
            .unwrap();
        let kept = changed.session_token.unwrap();
        assert!(tn.validate_session(&kept).unwrap().is_some());
        assert!(tn.validate_session(&phone).unwrap().is_none());
        assert!(tn.validate_session(&laptop).unwrap().is_none());
        assert_eq!(tn.status().unwrap().counts.sessions, 1);
    }
}

#[test]
fn revoking_sessions_ends_them_and_is_audited() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        provision(tn, "anchor-rv", "revoke@phs.test");
        tn.apply_synced_credential(&synced("anchor-rv", "Revoke-Passw0rd", T0, false))
            .unwrap();
        let tokens: Vec<String> = (0..3)
            .map(|_| {
                tn.sign_in("revoke@phs.test", &utf16("Revoke-Passw0rd"))
                    .unwrap()
                    .session_token
                    .unwrap()
            })
            .collect();
        tn.add_cloud_user("bystander@phs.test", None).unwrap();
        tn.set_password("bystander@phs.test", &utf16("Other-Person-Passw0rd"), false)
            .unwrap();
        let other = tn
            .sign_in("bystander@phs.test", &utf16("Other-Person-Passw0rd"))
            .unwrap()
            .session_token
            .unwrap();

        assert_eq!(tn.revoke_sessions("REVOKE@phs.test").unwrap(), 3);
        for token in &tokens {
            assert!(tn.validate_session(token).unwrap().is_none());
        }
        assert!(tn.validate_session(&other).unwrap().is_some());
        let row = tn.audit_log(1).unwrap().remove(0);
        assert_eq!(
            (row.action.as_str(), row.outcome.as_str()),
            ("session.revoke", "applied")
        );
        assert_eq!(row.user_principal_name.as_deref(), Some("revoke@phs.test"));
        assert_eq!(row.source_anchor.as_deref(), Some("anchor-rv"));
        assert_eq!(row.detail.as_deref(), Some("3 session(s) ended"));
        assert_eq!(tn.revoke_sessions("revoke@phs.test").unwrap(), 0);
        assert!(matches!(
            tn.revoke_sessions("ghost@phs.test"),
            Err(CloudError::UserNotFound(_))
        ));
    }
}

#[test]
fn must_change_and_disabled_accounts() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        provision(tn, "anchor-m", "must@phs.test");
        tn.apply_synced_credential(&synced("anchor-m", "Temp-Passw0rd", T0, true))
            .unwrap();
        assert_eq!(
            sign_in(&t, "must@phs.test", "Temp-Passw0rd"),
            SignInStatus::MustChangePassword
        );
        assert_eq!(
            sign_in(&t, "must@phs.test", "wrong"),
            SignInStatus::InvalidCredentials
        );
        let changed = tn
            .change_password(
                "must@phs.test",
                &utf16("Temp-Passw0rd"),
                &utf16("Mine-Passw0rd"),
            )
            .unwrap();
        assert_eq!(changed.result, SignInStatus::Success);
        assert_eq!(
            sign_in(&t, "must@phs.test", "Mine-Passw0rd"),
            SignInStatus::Success
        );

        tn.add_cloud_user("forced@phs.test", None).unwrap();
        tn.set_password("forced@phs.test", &utf16("Given-Passw0rd"), true)
            .unwrap();
        assert_eq!(
            sign_in(&t, "forced@phs.test", "Given-Passw0rd"),
            SignInStatus::MustChangePassword
        );

        tn.provision_synced_user(&phsync_tenant::SyncedUserSpec {
            source_anchor: "anchor-m".into(),
            user_principal_name: "must@phs.test".into(),
            display_name: Some("must".into()),
            enabled: false,
        })
        .unwrap();
        assert_eq!(
            sign_in(&t, "must@phs.test", "Mine-Passw0rd"),
            SignInStatus::AccountDisabled
        );
        assert_eq!(
            sign_in(&t, "must@phs.test", "wrong"),
            SignInStatus::InvalidCredentials
        );
    }
}

#[test]
fn users_are_matched_by_anchor_and_upn_is_case_insensitive() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        provision(tn, "anchor-n", "Name@PHS.test");
        tn.apply_synced_credential(&synced("anchor-n", "Renamed-1", T0, false))
            .unwrap();
        assert!(tn.user("name@phs.test").unwrap().is_some());
        assert!(matches!(
            tn.add_cloud_user("NAME@phs.TEST", None),
            Err(CloudError::UpnConflict(_))
        ));

        // A UPN rename follows the anchor and keeps the password.
        provision(tn, "anchor-n", "renamed@phs.test");
        assert!(tn.user("name@phs.test").unwrap().is_none());
        let user = tn.user_by_anchor("anchor-n").unwrap().unwrap();
        assert_eq!(user.user_principal_name, "renamed@phs.test");
        assert_eq!(
            sign_in(&t, "renamed@phs.test", "Renamed-1"),
            SignInStatus::Success
        );

        // A credential before its user: a clear not-found the sender can retry on.
        assert!(matches!(
            tn.apply_synced_credential(&synced("anchor-unknown", "x", T0, false)),
            Err(CloudError::AnchorNotFound(_))
        ));
        let mut bad = synced("anchor-n", "x", T0.plus_seconds(1), false);
        bad.digest = zeroize::Zeroizing::new("v1;PPH1_MD4,nonsense".into());
        assert!(matches!(
            tn.apply_synced_credential(&bad),
            Err(CloudError::MalformedDigest(_))
        ));
        assert!(matches!(
            tn.add_cloud_user("no-at-sign", None),
            Err(CloudError::InvalidUpn(..))
        ));
        assert!(matches!(
            tn.set_password("ghost@phs.test", &utf16("Ghost-Passw0rd"), false),
            Err(CloudError::UserNotFound(_))
        ));
    }
}

#[test]
fn audit_rows_carry_no_secret() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        provision(tn, "anchor-aud", "audit@phs.test");
        let cred = synced("anchor-aud", "Synced-Secret-Aud1", T0, false);
        let digest = cred.digest.to_string();
        tn.apply_synced_credential(&cred).unwrap();
        sign_in(&t, "audit@phs.test", "Synced-Secret-Aud1");
        sign_in(&t, "audit@phs.test", "Wrong-Secret-Aud2");
        tn.set_password("audit@phs.test", &utf16("Cloud-Secret-Aud3"), true)
            .unwrap();
        let _ = tn.set_password("audit@phs.test", &utf16("weak"), false);
        tn.change_password(
            "audit@phs.test",
            &utf16("Cloud-Secret-Aud3"),
            &utf16("Changed-Secret-Aud4"),
        )
        .unwrap();

        let nt = phsync_hash::NtHash::from_password("Synced-Secret-Aud1").unwrap();
        let key_hex = digest
            .split(',')
            .nth(3)
            .unwrap()
            .trim_end_matches(';')
            .to_string();
        let salt_hex = digest.split(',').nth(1).unwrap().to_string();
        let secrets = [
            "Synced-Secret-Aud1".to_string(),
            "Wrong-Secret-Aud2".into(),
            "Cloud-Secret-Aud3".into(),
            "Changed-Secret-Aud4".into(),
            "weak".into(),
            digest.clone(),
            key_hex,
            salt_hex,
            nt.to_upper_hex().to_string(),
            nt.to_upper_hex().to_lowercase(),
            "$argon2id".into(),
        ];
        let api_rows = serde_json::to_string(&tn.audit_log(1000).unwrap()).unwrap();
        let raw_rows = t.raw_rows("audit");
        let count = raw_rows.len();
        let raw = raw_rows.join("\n");
        assert!(count >= 7, "{count} audit rows");
        for s in &secrets {
            assert!(
                !raw.contains(s.as_str()),
                "audit table holds a secret ({} chars)",
                s.len()
            );
            assert!(!api_rows.contains(s.as_str()), "audit API shows a secret");
        }
        for action in [
            "password.sync",
            "sign_in",
            "password.reset",
            "password.change",
        ] {
            assert!(api_rows.contains(action), "no {action} row");
        }
    }
}

#[cfg(unix)]
#[test]
fn tenant_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    for t in all_tenants().into_iter().filter(|t| t.name == "sqlite") {
        let tn = t.tenant.as_ref();
        tn.add_cloud_user("perm@phs.test", None).unwrap();
        // While open, WAL and shared-memory files exist too; all must be 0600.
        for suffix in ["", "-wal", "-shm"] {
            let path = format!("{}{suffix}", t.target);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{path} has mode {mode:o}");
        }
    }
    // An existing file that is too open is tightened on open.
    let dir = TempDir::new("perm");
    let path = dir.0.join("loose.db");
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    phsync_tenant::open(path.to_str().unwrap(), "test").unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn concurrent_handles_never_apply_an_older_credential() {
    // Separate handles are separate connections (SQLite: the same locking as separate
    // processes; PostgreSQL: separate pools, as in separate service replicas). Each thread
    // applies changes in its own shuffled order.
    for t in all_tenants() {
        provision(t.tenant.as_ref(), "anchor-race", "race@phs.test");
        let target = t.target.clone();
        let threads: Vec<_> = (0..4)
            .map(|k| {
                let target = target.clone();
                std::thread::spawn(move || {
                    let tenant = phsync_tenant::open(&target, "racer").unwrap();
                    for i in 0..20 {
                        let n = (i * 7 + k * 3) % 20;
                        let cred =
                            synced("anchor-race", &format!("Pw-{n}"), T0.plus_seconds(n), false);
                        tenant.apply_synced_credential(&cred).unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|h| h.join().unwrap());
        let user = t.tenant.user("race@phs.test").unwrap().unwrap();
        assert_eq!(user.password.unwrap().changed_at, T0.plus_seconds(19));
        assert_eq!(sign_in(&t, "race@phs.test", "Pw-19"), SignInStatus::Success);
    }
}
