//! Issue 16: the batch calls run one transaction per chunk, yet each item's result is what
//! it would be alone: a failing item leaves nothing behind, the others are applied.

use phsync_tenant::{CloudError, CredentialOutcome, ProvisionOutcome, SyncedUserSpec};
use phsync_testkit::tenant::*;

fn spec(anchor: &str, upn: &str) -> SyncedUserSpec {
    SyncedUserSpec {
        source_anchor: anchor.into(),
        user_principal_name: upn.into(),
        display_name: None,
        enabled: true,
    }
}

/// `n` distinct valid anchors (base64 of 16 bytes, as the engine sends them).
fn anchor(i: usize) -> String {
    use base64::Engine as _;
    let mut guid = [0u8; 16];
    guid[..8].copy_from_slice(&(i as u64).to_le_bytes());
    base64::engine::general_purpose::STANDARD.encode(guid)
}

#[test]
fn a_failing_item_of_a_batch_leaves_nothing_and_the_others_apply() {
    for t in all_tenants() {
        let tenant = &t.tenant;
        tenant.add_cloud_user("taken@phs.test", None).unwrap();
        let audit_before = t.raw_rows("audit").len();
        let results = tenant
            .provision_synced_users(&[
                spec(&anchor(1), "one@phs.test"),
                // The UPN belongs to a cloud user: the insert fails inside the transaction.
                spec(&anchor(2), "taken@phs.test"),
                spec("bad\u{1}anchor", "bad@phs.test"),
                spec(&anchor(3), "three@phs.test"),
            ])
            .unwrap();
        assert!(
            matches!(results[0], Ok(ProvisionOutcome::Created)),
            "{}",
            t.name
        );
        assert!(
            matches!(results[1], Err(CloudError::UpnConflict(_))),
            "{}: {:?}",
            t.name,
            results[1]
        );
        assert!(
            matches!(results[2], Err(CloudError::InvalidArgument(_))),
            "{}",
            t.name
        );
        assert!(
            matches!(results[3], Ok(ProvisionOutcome::Created)),
            "{}",
            t.name
        );
        let users = tenant.users().unwrap();
        let mut upns: Vec<&str> = users
            .iter()
            .map(|u| u.user_principal_name.as_str())
            .collect();
        upns.sort_unstable();
        assert_eq!(
            upns,
            ["one@phs.test", "taken@phs.test", "three@phs.test"],
            "{}",
            t.name
        );
        assert_eq!(
            t.raw_rows("audit").len(),
            audit_before + 2,
            "{}: one entry per created user",
            t.name
        );

        let results = tenant
            .apply_synced_credentials(&[
                synced(&anchor(1), "One-Passw0rd!", T0, false),
                synced(&anchor(2), "Two-Passw0rd!", T0, false),
                synced(&anchor(3), "Three-Passw0rd!", T0, false),
                synced(&anchor(1), "One-Older-Pass1", T0.plus_seconds(-60), false),
            ])
            .unwrap();
        assert!(
            matches!(results[0], Ok(CredentialOutcome::Applied)),
            "{}",
            t.name
        );
        assert!(
            matches!(results[1], Err(CloudError::AnchorNotFound(_))),
            "{}",
            t.name
        );
        assert!(
            matches!(results[2], Ok(CredentialOutcome::Applied)),
            "{}",
            t.name
        );
        assert!(
            matches!(results[3], Ok(CredentialOutcome::Stale { .. })),
            "{}",
            t.name
        );
        assert_eq!(t.raw_rows("credentials").len(), 2, "{}", t.name);
    }
}

#[test]
fn batches_larger_than_a_chunk_apply_every_item_once() {
    for t in all_tenants() {
        let specs: Vec<_> = (0..1_100)
            .map(|i| spec(&anchor(i), &format!("user{i}@phs.test")))
            .collect();
        let results = t.tenant.provision_synced_users(&specs).unwrap();
        assert_eq!(results.len(), specs.len());
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Ok(ProvisionOutcome::Created))),
            "{}",
            t.name
        );
        let again = t.tenant.provision_synced_users(&specs).unwrap();
        assert!(
            again
                .iter()
                .all(|r| matches!(r, Ok(ProvisionOutcome::Unchanged))),
            "{}",
            t.name
        );
        assert_eq!(t.tenant.users().unwrap().len(), specs.len(), "{}", t.name);
    }
}
