//! Leaked-credentials marks (issue 18), run against every store in
//! `phsync_testkit::tenant`: one mark per user while the current password is leaked,
//! cleared by any change of the password or a list that no longer holds it, an audit row
//! for every transition, and the change-required policy when blocking.

use phsync_tenant::{
    AuditEntry, CredentialOutcome, LeakCheck, RiskKind, SignInStatus, SyncedCredential,
    LEAKED_ACTION,
};
use phsync_testkit::tenant::*;

fn with_check(mut c: SyncedCredential, check: Option<LeakCheck>) -> SyncedCredential {
    c.leak_check = check;
    c
}

/// The leaked-credentials audit rows of `upn`, oldest first: (outcome, detail).
fn transitions(t: &TestTenant, upn: &str) -> Vec<(String, String)> {
    let mut rows: Vec<AuditEntry> = t
        .tenant
        .audit_log(1000)
        .unwrap()
        .into_iter()
        .filter(|a| a.action == LEAKED_ACTION && a.user_principal_name.as_deref() == Some(upn))
        .collect();
    rows.reverse();
    rows.into_iter()
        .map(|a| (a.outcome, a.detail.unwrap_or_default()))
        .collect()
}

fn marks(t: &TestTenant, upn: &str) -> Vec<phsync_tenant::UserRisk> {
    t.tenant.user(upn).unwrap().unwrap().risks
}

#[test]
fn a_leaked_password_is_marked_once_and_a_clean_onprem_change_clears_it() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        provision(tn, "anchor-l", "leaky@phs.test");
        provision(tn, "anchor-c", "clean@phs.test");
        let (t1, t2) = (T0.plus_seconds(-100), T0.plus_seconds(-50));
        let leaked = with_check(
            synced("anchor-l", "Summer2024!", t1, false),
            Some(LeakCheck::leaked(Some(42), false)),
        );
        assert_eq!(
            tn.apply_synced_credential(&leaked).unwrap(),
            CredentialOutcome::Applied
        );
        let clean = with_check(
            synced("anchor-c", "Unlisted-Long-1", t1, false),
            Some(LeakCheck::clean()),
        );
        tn.apply_synced_credential(&clean).unwrap();
        let m = marks(&t, "leaky@phs.test");
        assert_eq!(m.len(), 1, "{}", t.name);
        assert_eq!(m[0].kind, RiskKind::LeakedCredentials);
        assert_eq!((m[0].detected_at, m[0].breach_count), (T0, Some(42)));
        assert!(marks(&t, "clean@phs.test").is_empty());
        let list = tn.risks().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].user_principal_name, "leaky@phs.test");
        assert_eq!(list[0].source_anchor.as_deref(), Some("anchor-l"));
        // Not blocking: the user signs in as before.
        assert_eq!(
            tn.sign_in("leaky@phs.test", &utf16("Summer2024!"))
                .unwrap()
                .result,
            SignInStatus::Success
        );

        // The next sync sends the same password again (stale), still leaked, with a new
        // count: still one mark, first detection kept, the count follows the list.
        t.clock.advance_seconds(3600);
        let again = with_check(
            synced("anchor-l", "Summer2024!", t1, false),
            Some(LeakCheck::leaked(Some(50), false)),
        );
        assert!(matches!(
            tn.apply_synced_credential(&again).unwrap(),
            CredentialOutcome::Stale { .. }
        ));
        let m = marks(&t, "leaky@phs.test");
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].detected_at, m[0].breach_count), (T0, Some(50)));
        assert_eq!(t.raw_rows("risks").len(), 1, "{}", t.name);
        // An older change (really stale) says nothing about the current password.
        let older = with_check(
            synced("anchor-l", "Older-1", T0.plus_seconds(-500), false),
            Some(LeakCheck::clean()),
        );
        tn.apply_synced_credential(&older).unwrap();
        assert_eq!(marks(&t, "leaky@phs.test").len(), 1);

        // An on-prem change to a clean password clears the mark.
        let changed = with_check(
            synced("anchor-l", "Unlisted-Long-2", t2, false),
            Some(LeakCheck::clean()),
        );
        assert_eq!(
            tn.apply_synced_credential(&changed).unwrap(),
            CredentialOutcome::Applied
        );
        assert!(marks(&t, "leaky@phs.test").is_empty());
        assert!(tn.risks().unwrap().is_empty());
        assert!(t.raw_rows("risks").is_empty());
        let audit = transitions(&t, "leaky@phs.test");
        assert_eq!(audit.len(), 2, "{audit:?}");
        assert_eq!(audit[0].0, "marked");
        assert!(audit[0].1.contains("42 breaches"), "{}", audit[0].1);
        assert_eq!(
            audit[1],
            ("cleared".into(), "the password changed on-prem".into())
        );
        assert!(transitions(&t, "clean@phs.test").is_empty());
    }
}

#[test]
fn a_list_configured_later_marks_the_current_password_and_an_update_clears_it() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        provision(tn, "anchor-a", "a@phs.test");
        let t1 = T0.plus_seconds(-100);
        // Synced before the agent had a list: no verdict, no mark.
        tn.apply_synced_credential(&synced("anchor-a", "Pw-1", t1, false))
            .unwrap();
        assert!(marks(&t, "a@phs.test").is_empty());
        // The next full sync, with a list: the same password, now marked.
        t.clock.advance_seconds(60);
        let leaked = with_check(
            synced("anchor-a", "Pw-1", t1, false),
            Some(LeakCheck::leaked(None, false)),
        );
        tn.apply_synced_credential(&leaked).unwrap();
        let m = marks(&t, "a@phs.test");
        assert_eq!(m.len(), 1, "{}", t.name);
        assert_eq!(
            (m[0].detected_at, m[0].breach_count),
            (T0.plus_seconds(60), None)
        );
        // An agent without a list changes nothing.
        tn.apply_synced_credential(&synced("anchor-a", "Pw-1", t1, false))
            .unwrap();
        assert_eq!(marks(&t, "a@phs.test").len(), 1);
        // A list that no longer holds the hash clears it.
        let clean = with_check(
            synced("anchor-a", "Pw-1", t1, false),
            Some(LeakCheck::clean()),
        );
        tn.apply_synced_credential(&clean).unwrap();
        assert!(marks(&t, "a@phs.test").is_empty());
        let audit = transitions(&t, "a@phs.test");
        assert_eq!(audit.len(), 2, "{audit:?}");
        assert_eq!(audit[0].0, "marked");
        assert_eq!(
            audit[1],
            (
                "cleared".into(),
                "the current password is no longer in the leaked list".into()
            )
        );
    }
}

#[test]
fn blocking_requires_a_change_at_sign_in_and_the_change_clears_the_mark() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        provision(tn, "anchor-b", "b@phs.test");
        provision(tn, "anchor-d", "d@phs.test");
        let t1 = T0.plus_seconds(-100);
        let leaked = with_check(
            synced("anchor-b", "Password1", t1, false),
            Some(LeakCheck::leaked(Some(7), true)),
        );
        tn.apply_synced_credential(&leaked).unwrap();
        let b = tn.user("b@phs.test").unwrap().unwrap();
        assert!(b.password.unwrap().force_change_at_next_sign_in);
        assert_eq!(
            tn.sign_in("b@phs.test", &utf16("Password1"))
                .unwrap()
                .result,
            SignInStatus::MustChangePassword,
            "{}",
            t.name
        );
        let changed = tn
            .change_password(
                "b@phs.test",
                &utf16("Password1"),
                &utf16("Fresh-Unlisted-9"),
            )
            .unwrap();
        assert_eq!(changed.result, SignInStatus::Success);
        assert!(marks(&t, "b@phs.test").is_empty());
        // The next sync sends the old on-prem password again: older than the cloud one,
        // it marks nothing.
        tn.apply_synced_credential(&leaked).unwrap();
        assert!(marks(&t, "b@phs.test").is_empty());
        assert_eq!(
            transitions(&t, "b@phs.test"),
            vec![
                (
                    "marked".to_string(),
                    "the current password is in the leaked list (7 breaches); must change at next sign-in".to_string()
                ),
                (
                    "cleared".to_string(),
                    "the user changed the password in the cloud".to_string()
                ),
            ]
        );

        // Blocking turned on after the password was synced: the next sync's verdict
        // requires the change too.
        tn.apply_synced_credential(&synced("anchor-d", "Password2", t1, false))
            .unwrap();
        assert_eq!(
            tn.sign_in("d@phs.test", &utf16("Password2"))
                .unwrap()
                .result,
            SignInStatus::Success
        );
        let leaked = with_check(
            synced("anchor-d", "Password2", t1, false),
            Some(LeakCheck::leaked(Some(3), true)),
        );
        tn.apply_synced_credential(&leaked).unwrap();
        assert_eq!(
            tn.sign_in("d@phs.test", &utf16("Password2"))
                .unwrap()
                .result,
            SignInStatus::MustChangePassword
        );
        // An administrator reset clears the mark too.
        tn.set_password("d@phs.test", &utf16("Reset-Unlisted-7"), false)
            .unwrap();
        assert!(marks(&t, "d@phs.test").is_empty());
        let audit = transitions(&t, "d@phs.test");
        assert_eq!(audit.len(), 2, "{audit:?}");
        assert_eq!(
            audit[1],
            (
                "cleared".into(),
                "an administrator reset the password in the cloud".into()
            )
        );
        assert!(tn.risks().unwrap().is_empty());
    }
}

#[test]
fn a_new_leaked_password_keeps_one_mark_and_a_deleted_user_takes_it_along() {
    for t in all_tenants() {
        let tn = t.tenant.as_ref();
        provision(tn, "anchor-e", "e@phs.test");
        let check = Some(LeakCheck::leaked(Some(1), false));
        tn.apply_synced_credential(&with_check(
            synced("anchor-e", "Leaked-1", T0.plus_seconds(-100), false),
            check,
        ))
        .unwrap();
        t.clock.advance_seconds(10);
        tn.apply_synced_credential(&with_check(
            synced("anchor-e", "Leaked-2", T0.plus_seconds(-50), false),
            check,
        ))
        .unwrap();
        let m = marks(&t, "e@phs.test");
        assert_eq!(m.len(), 1, "{}", t.name);
        // Detected anew: it is another password.
        assert_eq!(m[0].detected_at, T0.plus_seconds(10));
        let audit = transitions(&t, "e@phs.test");
        assert_eq!(audit.len(), 2);
        assert!(audit[1]
            .1
            .starts_with("the new password is in the leaked list too"));
        // A mark holds no secret: only the kind, the times and the count.
        for row in t.raw_rows("risks") {
            assert!(!row.to_lowercase().contains("pph1"), "{row}");
        }
        tn.delete_user("e@phs.test").unwrap();
        assert!(tn.risks().unwrap().is_empty());
        assert!(t.raw_rows("risks").is_empty());
    }
}
