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
