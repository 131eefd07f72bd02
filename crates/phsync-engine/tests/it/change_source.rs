//! Change-driven sync beyond passwords, against the lab DC under `Engine::run`: DirSync as the
//! change source, scope changes (a scoping group's member removed and added back, a disable,
//! a move out of the scoped OU) within seconds, a description-only change replicating
//! nothing, and a tenant outage during a notified change (the cursor stays; the change
//! arrives when the tenant is back). Each test has an OU of its own.

use std::time::Duration;

use phsync_engine::{ChangeStats, Engine, NotificationStatus, RunHooks};
use phsync_tenant::SignInStatus;
use phsync_testkit::ad::TestOu;
use phsync_testkit::sync_fixture::SyncFixture;

use super::run_common::{notification_state, swapped, with_run, within, Relay, BOUND};

fn status(f: &SyncFixture) -> NotificationStatus {
    Engine::open(&f.config)
        .unwrap()
        .notification_status()
        .unwrap()
        .expect("a run stored its state")
}

fn stats(f: &SyncFixture) -> ChangeStats {
    status(f).stats
}

#[test]
fn dirsync_as_the_change_source_brings_a_password_within_seconds_and_status_says_so() {
    let f = SyncFixture::new("ndsync", "change_source = \"dirsync\"");
    let u = f.sam("nds");
    f.ou.add_user(&u, "DirSync-Old-1!");
    with_run(&f, RunHooks::default(), || {
        within(Duration::from_secs(60), "the first cycle", || {
            f.sign_in(&u, "DirSync-Old-1!") == SignInStatus::Success
        });
        within(BOUND, "DirSync connected", || {
            notification_state(&f) == "connected"
        });
        let s = status(&f);
        assert_eq!(s.source.as_deref(), Some("dirsync"), "{s:?}");
        assert!(s.live && s.pid == Some(std::process::id()), "{s:?}");
        f.ou.set_password(&u, "DirSync-New-1!");
        let took = within(BOUND, "the new password via DirSync", || {
            swapped(&f, &u, "DirSync-New-1!", "DirSync-Old-1!")
        });
        println!(
            "DirSync (polled every 2 s): new password signs in, old refused, {} ms after the modify",
            took.as_millis()
        );
        // A description is not even returned by DirSync: nothing replicated.
        let before = stats(&f);
        assert!(before.replicated >= 1, "{before:?}");
        f.ou.set_description(&u, "only a description");
        std::thread::sleep(Duration::from_secs(5));
        assert_eq!(stats(&f).replicated, before.replicated);
    });
    let s = status(&f);
    assert_eq!(
        (s.state.as_str(), s.source.as_deref()),
        ("stopped", Some("dirsync"))
    );
    let cookie = phsync_engine::state::StateStore::open(&f.dir.0.join("state"))
        .unwrap()
        .get("dirsync_cookie")
        .unwrap()
        .expect("the DirSync cookie is kept in the state store");
    assert!(cookie.starts_with("4d534453"), "an MSDS cookie: {cookie}");
}

#[test]
fn a_description_only_change_replicates_nothing_and_a_password_change_does() {
    let f = SyncFixture::new("ndesc", "");
    let u = f.sam("ndu");
    f.ou.add_user(&u, "Desc-Old-1!");
    with_run(&f, RunHooks::default(), || {
        within(Duration::from_secs(60), "the first cycle", || {
            f.sign_in(&u, "Desc-Old-1!") == SignInStatus::Success
        });
        within(BOUND, "notifications connected", || {
            notification_state(&f) == "connected"
        });
        let before = stats(&f);
        f.ou.set_description(&u, "only a description");
        within(BOUND, "the description change counted as unchanged", || {
            stats(&f).unchanged > before.unchanged
        });
        let after = stats(&f);
        assert_eq!(after.replicated, before.replicated, "{after:?}");
        println!("description only: {after:?}");
        f.ou.set_password(&u, "Desc-New-1!");
        within(BOUND, "the password change", || {
            swapped(&f, &u, "Desc-New-1!", "Desc-Old-1!")
        });
        let last = stats(&f);
        assert_eq!(last.replicated, after.replicated + 1, "{last:?}");
    });
}

#[test]
fn scope_changes_take_effect_within_seconds_group_removal_disable_move() {
    let f = SyncFixture::new("nscope", "");
    let (a, b, c) = (f.sam("nsa"), f.sam("nsb"), f.sam("nsc"));
    for u in [&a, &b, &c] {
        f.ou.add_user(u, "Scope-Pass-1!");
    }
    let group = f.ou.add_group(&f.sam("nsg"));
    f.ou.set_members(&group, "add", &[&a, &b, &c]);
    f.write_config(&format!("scope_groups = [\"{group}\"]"));
    let elsewhere = TestOu::new("nscope-out");
    let signs_in = |u: &str| f.sign_in(u, "Scope-Pass-1!");
    with_run(&f, RunHooks::default(), || {
        within(Duration::from_secs(60), "the first cycle", || {
            [&a, &b, &c]
                .iter()
                .all(|u| signs_in(u) == SignInStatus::Success)
        });
        within(BOUND, "notifications connected", || {
            notification_state(&f) == "connected"
        });
        let before = stats(&f);
        f.ou.set_members(&group, "delete", &[&a]);
        // A group change re-reads the whole group-scoped scope (membership changes do not touch
        // the user), which on a shared, busy lab DC can take longer than one user's change.
        let took = within(
            BOUND * 3,
            "removed from the scoping group: disabled",
            || signs_in(&a) == SignInStatus::AccountDisabled,
        );
        println!(
            "group removal: disabled {} ms after the modify",
            took.as_millis()
        );
        f.ou.set_uac(&b, 514);
        let took = within(BOUND, "disabled on-prem: disabled", || {
            signs_in(&b) == SignInStatus::AccountDisabled
        });
        println!("disable: disabled {} ms after the modify", took.as_millis());
        f.ou.move_user(&c, &elsewhere.dn);
        let took = within(BOUND, "moved out of the scoped OU: disabled", || {
            signs_in(&c) == SignInStatus::AccountDisabled
        });
        println!("move: disabled {} ms after the modify", took.as_millis());
        let mid = stats(&f);
        assert_eq!(
            mid.replicated, before.replicated,
            "no password replicated: {mid:?}"
        );
        assert!(mid.scope_reads > before.scope_reads, "{mid:?}");
        assert!(
            mid.applied_without_replication >= before.applied_without_replication + 3,
            "{mid:?}"
        );
        // Back into the group: enabled again, with its password.
        f.ou.set_members(&group, "add", &[&a]);
        within(BOUND, "back in the scoping group: signs in", || {
            signs_in(&a) == SignInStatus::Success
        });
        let last = stats(&f);
        // Its password comes back with it: replicated once by the change path, or by a cycle
        // that ran first on a busy DC; never more than once.
        assert!(last.replicated <= mid.replicated + 1, "{last:?}");
    });
    // The first cycle's users, then nothing stale: the tenant agrees after a full cycle too.
    f.cycle(false);
    assert_eq!(signs_in(&a), SignInStatus::Success);
    assert_eq!(signs_in(&b), SignInStatus::AccountDisabled);
    assert_eq!(signs_in(&c), SignInStatus::AccountDisabled);
}

/// The PostgreSQL lab's address, from `PHSYNC_TEST_POSTGRES`.
fn postgres() -> (String, std::net::SocketAddr) {
    let url = phsync_testkit::tenant::postgres_url();
    let after_at = url.rsplit_once('@').unwrap().1;
    let host_port = after_at.split('/').next().unwrap();
    (url.clone(), host_port.parse().unwrap())
}

#[test]
fn a_notified_change_while_the_tenant_is_unreachable_arrives_when_it_is_back() {
    let f = SyncFixture::new("ntenant", "");
    let db = phsync_testkit::tenant::TestDatabase::new("ntenant");
    let (_, pg) = postgres();
    let relay = Relay::start(pg);
    let via_relay = db.url.replace(&pg.to_string(), &relay.addr.to_string());
    assert_ne!(via_relay, db.url);
    f.write_config_to(&f.config, "", &format!("tenant = \"{via_relay}\""), "state");
    let cursor = || {
        phsync_engine::state::StateStore::open(&f.dir.0.join("state"))
            .unwrap()
            .get("replication_cursor")
            .unwrap()
    };
    let u = f.sam("ntu");
    f.ou.add_user(&u, "Tenant-Old-1!");
    with_run(&f, RunHooks::default(), || {
        // The test reads the tenant directly, not through the relay.
        let direct = phsync_tenant::open(&db.url, "test").unwrap();
        let sign_in = |sam: &str, pw: &str| {
            let pw: Vec<u16> = pw.encode_utf16().collect();
            direct.sign_in(&f.ou.upn(sam), &pw).unwrap().result
        };
        within(Duration::from_secs(60), "the first cycle", || {
            sign_in(&u, "Tenant-Old-1!") == SignInStatus::Success
        });
        within(BOUND, "notifications connected", || {
            notification_state(&f) == "connected"
        });
        // The cursor is stored right after the first cycle delivered.
        within(BOUND, "the first cycle's cursor", || cursor().is_some());
        let stored = cursor().unwrap();
        relay.down.send(true).unwrap();
        f.ou.set_password(&u, "Tenant-New-1!");
        // The batch fails, catch-up cycles fail: the cursor stays where it was.
        std::thread::sleep(Duration::from_secs(8));
        assert_eq!(
            sign_in(&u, "Tenant-New-1!"),
            SignInStatus::InvalidCredentials
        );
        assert_eq!(
            cursor().as_deref(),
            Some(stored.as_str()),
            "the cursor moved during the outage"
        );
        relay.down.send(false).unwrap();
        let took = within(
            Duration::from_secs(40),
            "the change once the tenant is back",
            || {
                sign_in(&u, "Tenant-New-1!") == SignInStatus::Success
                    && sign_in(&u, "Tenant-Old-1!") == SignInStatus::InvalidCredentials
            },
        );
        println!(
            "tenant back: the change made during the outage arrived {} ms later",
            took.as_millis()
        );
    });
}
