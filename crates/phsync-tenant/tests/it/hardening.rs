//! Issue 15: the tenant against hostile clients (oversized and control-character input,
//! sync sources that reach for each other's users, password checks that hold the store).

use phsync_tenant::{
    open_store, CloudError, CloudTenant, LocalTenant, SignInStatus, SyncedUserSpec,
};
use phsync_testkit::tenant::*;

/// A handle on `t`'s store as the service builds one for a token: `source` is an agent's
/// sync source, `None` an administrator.
fn handle(t: &TestTenant, source: Option<&str>) -> LocalTenant {
    LocalTenant::new(open_store(&t.target).unwrap(), t.clock.clone())
        .with_actor(source.map_or("admin:test".to_string(), |s| format!("agent:{s}")))
        .with_source(source.map(str::to_string))
}

fn spec(anchor: &str, upn: &str) -> SyncedUserSpec {
    SyncedUserSpec {
        source_anchor: anchor.into(),
        user_principal_name: upn.into(),
        display_name: None,
        enabled: true,
    }
}

fn count(t: &TestTenant, table: &str) -> usize {
    t.raw_rows(table).len()
}

/// The tenant file and its WAL, in bytes.
fn sqlite_bytes(t: &TestTenant) -> u64 {
    ["", "-wal"]
        .iter()
        .map(|s| {
            std::fs::metadata(format!("{}{s}", t.target))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum()
}

#[test]
fn oversized_upns_are_refused_before_anything_is_stored_or_hashed() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        tn.add_cloud_user("real@phs.test", None).unwrap();
        let huge = format!("{}@phs.test", "u".repeat(1_000_000));
        let (audit, lockouts, size) = (count(&t, "audit"), count(&t, "lockouts"), sqlite_bytes(&t));
        let start = std::time::Instant::now();
        for _ in 0..100 {
            let e = tn.sign_in(&huge, &utf16("Whatever-1")).unwrap_err();
            assert!(matches!(e, CloudError::InvalidUpn(..)), "{e}");
            // The error carries a bounded rendering, not the megabyte.
            assert!(
                e.to_string().chars().count() < 200,
                "{} chars",
                e.to_string().len()
            );
        }
        let e = tn
            .change_password(&huge, &utf16("Old-Passw0rd"), &utf16("New-Passw0rd"))
            .unwrap_err();
        assert!(matches!(e, CloudError::InvalidUpn(..)), "{e}");
        // No Argon2id ran: 101 of them would take seconds.
        assert!(
            start.elapsed() < std::time::Duration::from_secs(2),
            "{}: {:?}",
            t.name,
            start.elapsed()
        );
        assert_eq!(count(&t, "audit"), audit, "{}: audit rows", t.name);
        assert_eq!(count(&t, "lockouts"), lockouts, "{}: lockout rows", t.name);
        if t.name == "sqlite" {
            let grown = sqlite_bytes(&t).saturating_sub(size);
            assert!(grown < 1 << 20, "the tenant file grew by {grown} bytes");
        }
    }
}

#[test]
fn upns_up_to_ads_limit_are_accepted() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        let at_limit = format!("{}@phs.test", "a".repeat(1024 - "@phs.test".len()));
        assert_eq!(at_limit.chars().count(), phsync_tenant::MAX_UPN_CHARS);
        tn.add_cloud_user(&at_limit, None).unwrap();
        tn.set_password(&at_limit, &utf16("Long-Name-Passw0rd"), false)
            .unwrap();
        assert_eq!(
            tn.sign_in(&at_limit, &utf16("Long-Name-Passw0rd"))
                .unwrap()
                .result,
            SignInStatus::Success
        );
        let synced = format!("{}@phs.test", "s".repeat(1024 - "@phs.test".len()));
        tn.provision_synced_user(&spec("anchor-long", &synced))
            .unwrap();

        let over = format!("b{at_limit}");
        assert!(matches!(
            tn.add_cloud_user(&over, None),
            Err(CloudError::InvalidUpn(..))
        ));
        assert!(matches!(
            tn.provision_synced_user(&spec("anchor-over", &over)),
            Err(CloudError::InvalidUpn(..))
        ));
        assert!(matches!(
            tn.sign_in(&over, &utf16("Long-Name-Passw0rd")),
            Err(CloudError::InvalidUpn(..))
        ));
    }
}

#[test]
fn control_characters_are_refused_everywhere() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        tn.add_cloud_user("ctl@phs.test", None).unwrap();
        provision(tn, "anchor-ctl", "synced-ctl@phs.test");
        let (audit, lockouts) = (count(&t, "audit"), count(&t, "lockouts"));
        for c in [
            '\u{1b}', '\t', '\r', '\n', '\u{7f}', '\u{85}', '\u{9b}', '\0',
        ] {
            let upn = format!("ctl{c}x@phs.test");
            let pw = utf16("Some-Passw0rd-1");
            let results: Vec<(&str, Result<(), CloudError>)> = vec![
                ("add", tn.add_cloud_user(&upn, None).map(drop)),
                (
                    "provision",
                    tn.provision_synced_user(&spec("anchor-c", &upn)).map(drop),
                ),
                ("sign_in", tn.sign_in(&upn, &pw).map(drop)),
                (
                    "change",
                    tn.change_password(&upn, &pw, &utf16("Other-Passw0rd-2"))
                        .map(drop),
                ),
                ("set", tn.set_password(&upn, &pw, false).map(drop)),
                ("user", tn.user(&upn).map(drop)),
                ("delete", tn.delete_user(&upn)),
                ("revoke", tn.revoke_sessions(&upn).map(drop)),
            ];
            for (what, r) in results {
                let e = r.expect_err(what);
                assert!(matches!(e, CloudError::InvalidUpn(..)), "{what} {c:?}: {e}");
                let text = e.to_string();
                assert!(!text.chars().any(char::is_control), "{what}: {text:?}");
            }
            // Anchors and display names too.
            let bad_anchor = format!("anchor{c}");
            assert!(matches!(
                tn.provision_synced_user(&spec(&bad_anchor, "fine@phs.test")),
                Err(CloudError::InvalidArgument(_))
            ));
            assert!(matches!(
                tn.apply_synced_credential(&synced(&bad_anchor, "Pw-1", T0, false)),
                Err(CloudError::InvalidArgument(_))
            ));
            let mut named = spec("anchor-ctl", "synced-ctl@phs.test");
            named.display_name = Some(format!("Evil{c}[2J"));
            assert!(matches!(
                tn.provision_synced_user(&named),
                Err(CloudError::InvalidArgument(_))
            ));
            assert!(matches!(
                tn.add_cloud_user("named@phs.test", Some(&format!("Evil{c}"))),
                Err(CloudError::InvalidArgument(_))
            ));
        }
        assert_eq!(count(&t, "audit"), audit, "{}", t.name);
        assert_eq!(count(&t, "lockouts"), lockouts, "{}", t.name);
        assert!(tn.user("named@phs.test").unwrap().is_none());
        let long_name = spec("anchor-ctl", "synced-ctl@phs.test");
        let long_name = SyncedUserSpec {
            display_name: Some("n".repeat(257)),
            ..long_name
        };
        assert!(matches!(
            tn.provision_synced_user(&long_name),
            Err(CloudError::InvalidArgument(_))
        ));
    }
}

#[test]
fn errors_show_caller_input_bounded_and_escaped() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        let ghost = format!("{}@phs.test", "g".repeat(1000));
        let e = tn.set_password(&ghost, &utf16("Ghost-Passw0rd"), false);
        let Err(CloudError::UserNotFound(shown)) = e else {
            panic!("{e:?}");
        };
        assert!(
            shown.chars().count() <= 81 && shown.ends_with('…'),
            "{shown}"
        );
        let anchor = "A".repeat(1000);
        let Err(CloudError::AnchorNotFound(shown)) =
            tn.apply_synced_credential(&synced(&anchor, "Pw-1", T0, false))
        else {
            panic!("expected AnchorNotFound");
        };
        assert!(shown.chars().count() <= 81, "{shown}");
        tn.add_cloud_user("dup@phs.test", None).unwrap();
        let Err(CloudError::UpnConflict(shown)) = tn.add_cloud_user("DUP@phs.test", None) else {
            panic!("expected UpnConflict");
        };
        assert_eq!(shown, "DUP@phs.test");
    }
}

#[test]
fn sources_own_their_domains() {
    for t in all_tenants() {
        let (admin, a, b) = (
            handle(&t, None),
            handle(&t, Some("a")),
            handle(&t, Some("b")),
        );
        a.provision_synced_user(&spec("QUFB", "x@a.test")).unwrap();
        b.provision_synced_user(&spec("QkJC", "y@b.test")).unwrap();

        // A cannot create a user in B's domain, nor move one there.
        assert!(matches!(
            a.provision_synced_user(&spec("QUFC", "boss@b.test")),
            Err(CloudError::DomainOwned(d)) if d == "b.test"
        ));
        assert!(matches!(
            a.provision_synced_user(&spec("QUFB", "x@B.TEST")),
            Err(CloudError::DomainOwned(_))
        ));
        assert_eq!(
            admin.user("x@a.test").unwrap().unwrap().user_principal_name,
            "x@a.test"
        );
        // Renames within its own domain are fine.
        a.provision_synced_user(&spec("QUFB", "x.renamed@a.test"))
            .unwrap();

        // A cloud-only domain, and a domain whose users no source owns, are no agent's.
        admin.add_cloud_user("ceo@cloud.test", None).unwrap();
        assert!(matches!(
            a.provision_synced_user(&spec("QUFD", "ceo2@cloud.test")),
            Err(CloudError::DomainOwned(_))
        ));
        admin
            .provision_synced_user(&spec("TEVH", "old@legacy.test"))
            .unwrap();
        assert!(matches!(
            a.provision_synced_user(&spec("QUFE", "new@legacy.test")),
            Err(CloudError::DomainOwned(_))
        ));
        // A refused domain was not claimed: B is refused the same way, not because A won.
        assert!(matches!(
            b.provision_synced_user(&spec("QkJD", "other@cloud.test")),
            Err(CloudError::DomainOwned(_))
        ));

        // Administrators own the tenant: a cloud user in B's domain, a synced one anywhere.
        admin.add_cloud_user("helpdesk@b.test", None).unwrap();
        admin
            .provision_synced_user(&spec("QURN", "admin-made@a.test"))
            .unwrap();
        // B keeps its domain (claimed), even with an administrator's user in it now.
        b.provision_synced_user(&spec("QkJF", "z@b.test")).unwrap();
        assert!(matches!(
            a.provision_synced_user(&spec("QUFF", "helpdesk2@b.test")),
            Err(CloudError::DomainOwned(_))
        ));
    }
}

#[test]
fn sources_own_their_anchors_even_after_a_deletion() {
    for t in all_tenants() {
        let (admin, a, b) = (
            handle(&t, None),
            handle(&t, Some("a")),
            handle(&t, Some("b")),
        );
        b.provision_synced_user(&spec("QkJC", "y@b.test")).unwrap();
        b.apply_synced_credential(&synced("QkJC", "Source-B-Pass1", T0, false))
            .unwrap();
        a.provision_synced_user(&spec("QUFB", "x@a.test")).unwrap();

        // Taking over B's anchor: refused, and told why.
        assert!(matches!(
            a.provision_synced_user(&spec("QkJC", "hijack@a.test")),
            Err(CloudError::AnchorOwned(anchor)) if anchor == "QkJC"
        ));
        // Pushing a password to it: answered as for an anchor that does not exist.
        let foreign = a
            .apply_synced_credential(&synced("QkJC", "Hijacked-Pass1", T0.plus_seconds(9), false))
            .unwrap_err();
        let missing = a
            .apply_synced_credential(&synced("QkJZ", "Hijacked-Pass1", T0.plus_seconds(9), false))
            .unwrap_err();
        assert!(
            matches!(foreign, CloudError::AnchorNotFound(_)),
            "{foreign}"
        );
        assert_eq!(
            foreign.to_string().replace("QkJC", "?"),
            missing.to_string().replace("QkJZ", "?")
        );
        assert!(a.user_by_anchor("QkJC").unwrap().is_none());
        assert_eq!(
            admin
                .sign_in("y@b.test", &utf16("Source-B-Pass1"))
                .unwrap()
                .result,
            SignInStatus::Success
        );

        // An administrator deletes B's user: the anchor stays B's.
        admin.delete_user("y@b.test").unwrap();
        assert!(matches!(
            a.provision_synced_user(&spec("QkJC", "hijack@a.test")),
            Err(CloudError::AnchorOwned(_))
        ));
        assert!(matches!(
            a.apply_synced_credential(&synced("QkJC", "Hijacked-Pass1", T0, false)),
            Err(CloudError::AnchorNotFound(_))
        ));
        // B brings its user back with the next sync.
        b.provision_synced_user(&spec("QkJC", "y@b.test")).unwrap();
        b.apply_synced_credential(&synced("QkJC", "Source-B-Pass2", T0.plus_seconds(1), false))
            .unwrap();
        assert_eq!(
            admin
                .sign_in("y@b.test", &utf16("Source-B-Pass2"))
                .unwrap()
                .result,
            SignInStatus::Success
        );
        // An administrator's synced user is no agent's either.
        admin
            .provision_synced_user(&spec("QURN", "admin-made@a.test"))
            .unwrap();
        assert!(matches!(
            a.provision_synced_user(&spec("QURN", "admin-made@a.test")),
            Err(CloudError::AnchorOwned(_))
        ));
        assert!(matches!(
            a.apply_synced_credential(&synced("QURN", "Pw-1", T0, false)),
            Err(CloudError::AnchorNotFound(_))
        ));
    }
}

#[test]
fn the_embedded_tenant_is_unrestricted() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        tn.add_cloud_user("cloud@mixed.test", None).unwrap();
        provision(tn, "anchor-m1", "synced@mixed.test");
        tn.delete_user("synced@mixed.test").unwrap();
        provision(tn, "anchor-m1", "again@mixed.test");
    }
}

/// Replace the stored digest of `upn` behind the tenant's back (an iteration count the API
/// refuses, to make a check slow).
fn put_raw_digest(t: &TestTenant, upn: &str, digest: &str) {
    let sql = "UPDATE credentials SET secret = $1 WHERE user_id = (SELECT id FROM users WHERE upn_key = $2)";
    if t.name == "postgresql" {
        let mut c = postgres::Client::connect(&t.target, postgres::NoTls).unwrap();
        assert_eq!(c.execute(sql, &[&digest, &upn]).unwrap(), 1);
    } else {
        let c = rusqlite::Connection::open(&t.target).unwrap();
        let sql = sql.replace('$', "?");
        assert_eq!(c.execute(&sql, [digest, upn]).unwrap(), 1);
    }
}

#[test]
fn a_sign_in_in_progress_does_not_block_other_writers() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        provision(tn, "anchor-slow", "slow@phs.test");
        tn.apply_synced_credential(&synced("anchor-slow", "Slow-Passw0rd", T0, false))
            .unwrap();
        // A million PBKDF2 iterations: the check takes a good part of a second.
        let nt = phsync_hash::NtHash::from_password("Slow-Passw0rd").unwrap();
        let slow = phsync_hash::PhsDigest::from_nt_hash(&nt, [7; 10], 1_000_000).unwrap();
        put_raw_digest(&t, "slow@phs.test", &slow.encode());

        let done = std::sync::Arc::new(AtomicBool::new(false));
        let signer = {
            let (target, done, clock) = (t.target.clone(), done.clone(), t.clock.clone());
            std::thread::spawn(move || {
                let tenant = phsync_tenant::open_with_clock(&target, "signer", clock).unwrap();
                let start = Instant::now();
                let result = tenant.sign_in("slow@phs.test", &utf16("Slow-Passw0rd"));
                done.store(true, Ordering::SeqCst);
                (result.unwrap().result, start.elapsed())
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        let agent = phsync_tenant::open_with_clock(&t.target, "agent", t.clock.clone()).unwrap();
        let start = Instant::now();
        provision(agent.as_ref(), "anchor-meanwhile", "meanwhile@phs.test");
        agent
            .apply_synced_credential(&synced("anchor-meanwhile", "Pw-1", T0, false))
            .unwrap();
        let writes_took = start.elapsed();
        let sign_in_over = done.load(Ordering::SeqCst);
        let (status, sign_in_took) = signer.join().unwrap();
        assert_eq!(status, SignInStatus::Success, "{}", t.name);
        assert!(
            !sign_in_over,
            "{}: the writes ({writes_took:?}) waited for the sign-in ({sign_in_took:?})",
            t.name
        );
    }
}

#[test]
fn concurrent_wrong_attempts_all_count_and_repeats_count_once() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        let settings = phsync_tenant::TenantSettings {
            lockout_threshold: 4,
            ..tn.settings().unwrap()
        };
        tn.update_settings(&settings).unwrap();
        tn.add_cloud_user("race@phs.test", None).unwrap();
        tn.set_password("race@phs.test", &utf16("Right-Passw0rd"), false)
            .unwrap();
        let attack = |upn: &'static str, passwords: Vec<String>| {
            let threads: Vec<_> = passwords
                .into_iter()
                .map(|pw| {
                    let (target, clock) = (t.target.clone(), t.clock.clone());
                    std::thread::spawn(move || {
                        let tenant =
                            phsync_tenant::open_with_clock(&target, "attacker", clock).unwrap();
                        tenant.sign_in(upn, &utf16(&pw)).unwrap().result
                    })
                })
                .collect();
            for h in threads {
                assert_eq!(h.join().unwrap(), SignInStatus::InvalidCredentials);
            }
        };
        // The same wrong password from many places at once counts once (one lockout salt,
        // even though no lockout row existed when they started).
        attack("race@phs.test", vec!["Same-Wrong-1".to_string(); 6]);
        assert_eq!(
            tn.sign_in("race@phs.test", &utf16("Right-Passw0rd"))
                .unwrap()
                .result,
            SignInStatus::Success
        );
        // Distinct wrong passwords at once all count: the account locks.
        attack(
            "race@phs.test",
            (0..4).map(|i| format!("Wrong-{i}")).collect(),
        );
        assert_eq!(
            tn.sign_in("race@phs.test", &utf16("Right-Passw0rd"))
                .unwrap()
                .result,
            SignInStatus::LockedOut
        );
    }
}

/// A store that runs `action` just before chosen write transactions begin, to change the
/// tenant between the two transactions of a password check.
struct Interleave {
    inner: std::sync::Arc<dyn phsync_tenant::store::TenantStore>,
    calls: std::sync::atomic::AtomicUsize,
    at: Vec<usize>,
    action: Box<dyn Fn(usize) + Send + Sync>,
}

impl phsync_tenant::store::TenantStore for Interleave {
    fn write(&self) -> phsync_tenant::CloudResult<Box<dyn phsync_tenant::store::StoreTx + '_>> {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.at.contains(&n) {
            (self.action)(n);
        }
        self.inner.write()
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

#[test]
fn a_password_changed_during_a_check_is_never_granted_on_the_old_one() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        provision(tn, "anchor-mid", "mid@phs.test");
        tn.apply_synced_credential(&synced("anchor-mid", "Before-1", T0, false))
            .unwrap();
        // Before the chosen write transactions (a check's are calls 0 and 1, a re-run's 2
        // and 3), the password changes to `{next}{call}`.
        let version = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(10));
        let interleaved = |at: Vec<usize>, next: &'static str| {
            let (target, clock, version) = (t.target.clone(), t.clock.clone(), version.clone());
            let store = Interleave {
                inner: open_store(&t.target).unwrap(),
                calls: Default::default(),
                at,
                action: Box::new(move |n| {
                    let other =
                        phsync_tenant::open_with_clock(&target, "sync", clock.clone()).unwrap();
                    let v = version.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let cred = synced(
                        "anchor-mid",
                        &format!("{next}{n}"),
                        T0.plus_seconds(v),
                        false,
                    );
                    assert_eq!(
                        other.apply_synced_credential(&cred).unwrap(),
                        phsync_tenant::CredentialOutcome::Applied
                    );
                }),
            };
            LocalTenant::new(std::sync::Arc::new(store), t.clock.clone())
        };
        // The old password checked right, but it is no longer the password: the check runs
        // again, against the new one, and fails.
        let r = interleaved(vec![1], "A").sign_in("mid@phs.test", &utf16("Before-1"));
        assert_eq!(
            r.unwrap().result,
            SignInStatus::InvalidCredentials,
            "{}",
            t.name
        );
        // The new password, checked against the old one: the second round grants it.
        let r = interleaved(vec![1], "B").sign_in("mid@phs.test", &utf16("B1"));
        assert_eq!(r.unwrap().result, SignInStatus::Success, "{}", t.name);
        // Changed during both rounds: refused, not counted towards lockout.
        let lockouts = t.raw_rows("lockouts");
        let r = interleaved(vec![1, 3], "C").sign_in("mid@phs.test", &utf16("C3"));
        assert_eq!(r.unwrap().result, SignInStatus::InvalidCredentials);
        assert_eq!(t.raw_rows("lockouts"), lockouts);
        let row = tn.audit_log(1).unwrap().remove(0);
        assert_eq!(row.action, "sign_in");
        assert!(row.detail.unwrap().contains("changed during"));
        // A user's own change whose old password changes meanwhile changes nothing.
        let r = interleaved(vec![1], "D").change_password(
            "mid@phs.test",
            &utf16("C3"),
            &utf16("Mine-Passw0rd-9"),
        );
        assert_eq!(r.unwrap().result, SignInStatus::InvalidCredentials);
        assert_eq!(
            tn.sign_in("mid@phs.test", &utf16("D1")).unwrap().result,
            SignInStatus::Success
        );
    }
}

#[test]
fn digests_with_absurd_iteration_counts_are_refused() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        provision(tn, "anchor-it", "iter@phs.test");
        let nt = phsync_hash::NtHash::from_password("Iter-Passw0rd").unwrap();
        let cred = |iterations: u32, at| phsync_tenant::SyncedCredential {
            source_anchor: "anchor-it".into(),
            digest: phsync_hash::PhsDigest::from_nt_hash(&nt, [1; 10], iterations)
                .unwrap()
                .encode(),
            changed_at: at,
            force_change_at_next_sign_in: false,
            leak_check: None,
        };
        // Azure AD Connect's 100 (before 2016) and 1000, and up to the cap, are fine.
        tn.apply_synced_credential(&cred(100, T0)).unwrap();
        tn.apply_synced_credential(&cred(100_000, T0.plus_seconds(1)))
            .unwrap();
        let e = tn
            .apply_synced_credential(&cred(100_001, T0.plus_seconds(2)))
            .unwrap_err();
        assert!(matches!(e, CloudError::InvalidArgument(_)), "{e}");
        assert!(e.to_string().contains("at most 100000"), "{e}");
        assert_eq!(
            tn.user("iter@phs.test")
                .unwrap()
                .unwrap()
                .password
                .unwrap()
                .changed_at,
            T0.plus_seconds(1)
        );
    }
}

#[test]
fn settings_keep_times_writable() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        let huge = phsync_tenant::TenantSettings {
            max_password_age_days: u32::MAX,
            ..tn.settings().unwrap()
        };
        let e = tn.update_settings(&huge).unwrap_err();
        assert!(matches!(e, CloudError::InvalidArgument(_)), "{e}");
        assert!(!e.to_string().contains(&u32::MAX.to_string()), "{e}");
        // The longest allowed age still gives an RFC 3339 expiry.
        let longest = phsync_tenant::TenantSettings {
            max_password_age_days: 36_500,
            session_lifetime_seconds: 365 * 86_400,
            ..tn.settings().unwrap()
        };
        tn.update_settings(&longest).unwrap();
        tn.add_cloud_user("ages@phs.test", None).unwrap();
        let set = tn
            .set_password("ages@phs.test", &utf16("Century-Passw0rd"), false)
            .unwrap();
        let json = serde_json::to_string(&set).unwrap();
        assert!(json.contains("\"password_expires_at\":\"2125-"), "{json}");
    }
}

#[test]
fn two_sources_racing_for_a_new_domain_cannot_both_win() {
    for t in all_tenants() {
        for round in 0..5 {
            let domain = format!("contested{round}.test");
            let threads: Vec<_> = ["a", "b", "c"]
                .into_iter()
                .map(|source| {
                    let tenant = handle(&t, Some(source));
                    let upn = format!("{source}@{domain}");
                    std::thread::spawn(move || {
                        tenant.provision_synced_user(&spec(&format!("{source}-{upn}"), &upn))
                    })
                })
                .collect();
            let results: Vec<_> = threads.into_iter().map(|h| h.join().unwrap()).collect();
            let won = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(won, 1, "{}: {results:?}", t.name);
            for r in results.iter().filter_map(|r| r.as_ref().err()) {
                assert!(matches!(r, CloudError::DomainOwned(_)), "{r}");
            }
        }
    }
}
