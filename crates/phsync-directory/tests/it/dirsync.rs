//! DirSync against the real Samba AD DC of scripts/ad-lab: what a poll reports after a
//! password change, a description-only change, a disable, a move and a group membership
//! change, resuming from a stored cookie, and the object-security fallback for an account
//! without replication rights. Each test works in an OU of its own and matches changes by
//! objectGUID: other suites changing the same DC at the same time do not disturb it.

use std::time::{Duration, Instant};

use phsync_directory::{DirSync, DirSyncChange, Directory, Guid, LdapTarget, Transport};
use phsync_testkit::ad::TestOu;
use phsync_testkit::lab::Lab;

/// Polls for an expected change: at most this long, every 100 ms.
const BOUND: Duration = Duration::from_secs(10);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn target(lab: &Lab, bind: &str) -> LdapTarget {
    LdapTarget {
        url: lab.ldaps_url.clone(),
        transport: Transport::Ldaps {
            ca_file: lab.ca_file.clone(),
        },
        timeout: Duration::from_secs(10),
        bind_name: bind.to_string(),
        realm: lab.realm.clone(),
        netbios_domain: lab.domain.clone(),
    }
}

async fn guid_of(lab: &Lab, dn: &str) -> Guid {
    let mut dir = Directory::connect(&target(lab, &lab.admin_upn), &lab.admin_password())
        .await
        .unwrap();
    let user = dir.resolve_user(dn).await.unwrap();
    dir.close().await;
    user.object_guid
}

/// Poll until a change for `guid` shows up (every change for it merged), or `BOUND`.
async fn poll_for(ds: &mut DirSync, guid: Guid) -> Option<DirSyncChange> {
    let started = Instant::now();
    let mut found: Option<DirSyncChange> = None;
    while started.elapsed() < BOUND {
        for c in ds.poll().await.unwrap() {
            if c.object_guid == guid {
                found = Some(c);
            }
        }
        if found.is_some() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Every change for `guid` in polls over `window` (none expected).
async fn changes_within(ds: &mut DirSync, guid: Guid, window: Duration) -> Vec<DirSyncChange> {
    let started = Instant::now();
    let mut out = Vec::new();
    while started.elapsed() < window {
        out.extend(
            ds.poll()
                .await
                .unwrap()
                .into_iter()
                .filter(|c| c.object_guid == guid),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    out
}

#[test]
fn dirsync_reports_what_phs_cares_about_and_not_a_description() {
    let ou = TestOu::new("dsync");
    let (u, g) = (format!("dsu{}", ou.suffix), format!("dsg{}", ou.suffix));
    ou.add_user(&u, "DirSync-Old-1!");
    let group_dn = ou.add_group(&g);
    let other_ou = ou.add_child_ou("moved");
    let lab = Lab::load();
    let replicator = lab.replicator();
    rt().block_on(async {
        let guid = guid_of(&lab, &ou.user_dn(&u)).await;
        let t = target(&lab, replicator.upn.as_deref().unwrap());
        let mut ds = DirSync::open(&t, &replicator.password, None).await.unwrap();
        assert!(
            !ds.object_security(),
            "the replicator has the replication right"
        );

        ou.set_description(&u, "nothing PHS cares about");
        let seen = changes_within(&mut ds, guid, Duration::from_secs(2)).await;
        assert!(
            seen.is_empty(),
            "a description change was reported: {seen:?}"
        );

        ou.set_password(&u, "DirSync-New-1!");
        let c = poll_for(&mut ds, guid).await.expect("the password change");
        assert!(c.password_changed(), "{c:?}");
        assert!(c.pwd_last_set.is_some(), "{c:?}");

        ou.set_uac(&u, 514);
        let c = poll_for(&mut ds, guid).await.expect("the disable");
        assert!(!c.password_changed(), "{c:?}");
        assert_eq!(c.user_account_control, Some(514));

        ou.set_members(&group_dn, "add", &[&u]);
        let group_guid = {
            let mut found = None;
            let started = Instant::now();
            while found.is_none() && started.elapsed() < BOUND {
                found = ds
                    .poll()
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|c| c.dn == group_dn);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            found.expect("the group's member change")
        };
        assert!(group_guid.is_group, "{group_guid:?}");

        // A change made while no reader is open arrives from the stored cookie.
        let cookie = ds.cookie().to_vec();
        ds.close().await;
        ou.move_user(&u, &other_ou);
        let mut ds = DirSync::open(&t, &replicator.password, Some(cookie))
            .await
            .unwrap();
        let c = poll_for(&mut ds, guid)
            .await
            .expect("the move, from the stored cookie");
        assert!(c.dn.ends_with(&other_ou), "{c:?}");
        assert!(c.changed.iter().any(|a| a == "name"), "{c:?}");
        ds.close().await;
    });
}

#[test]
fn an_account_without_replication_rights_gets_object_security() {
    let ou = TestOu::new("dsobj");
    let u = format!("dso{}", ou.suffix);
    ou.add_user(&u, "DirSync-Obj-1!");
    let lab = Lab::load();
    let plain = lab.account("norights");
    rt().block_on(async {
        let guid = guid_of(&lab, &ou.user_dn(&u)).await;
        let mut ds = DirSync::open(
            &target(&lab, plain.upn.as_deref().unwrap()),
            &plain.password,
            None,
        )
        .await
        .unwrap();
        assert!(
            ds.object_security(),
            "an account without Replicating Directory Changes runs DirSync with object security"
        );
        ou.set_uac(&u, 514);
        let c = poll_for(&mut ds, guid).await.expect("the disable");
        assert_eq!(c.user_account_control, Some(514));
        ds.close().await;
    });
}
