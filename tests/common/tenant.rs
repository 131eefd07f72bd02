//! Tenants for the rule tests: every store the tenant rules run on, each with a clock the
//! test controls. Add a store here and every rule test runs against it.
#![allow(dead_code)]

use std::sync::Arc;

use phsync::cloud::{self, CloudTenant, ManualClock, SyncedCredential, SyncedUserSpec, Timestamp};
use phsync::hash::{NtHash, PhsDigest};
use zeroize::Zeroizing;

pub struct TestTenant {
    pub name: &'static str,
    pub tenant: Box<dyn CloudTenant>,
    pub clock: Arc<ManualClock>,
    pub target: String,
    _dir: TempDir,
}

pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::env::temp_dir().join(format!("phsync-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// 2026-01-01T00:00:00Z: a fixed start so expiry arithmetic is readable.
pub const T0: Timestamp = Timestamp::from_unix_micros(1_767_225_600_000_000);

pub fn all_tenants() -> Vec<TestTenant> {
    let dir = TempDir::new("tenant");
    let target = dir.0.join("tenant.db").display().to_string();
    let clock = Arc::new(ManualClock::new(T0));
    let tenant = cloud::open_with_clock(&target, "test", clock.clone()).unwrap();
    vec![TestTenant {
        name: "sqlite",
        tenant,
        clock,
        target,
        _dir: dir,
    }]
}

pub fn utf16(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

pub fn digest_of(password: &str) -> Zeroizing<String> {
    PhsDigest::new_random(&NtHash::from_password(password).unwrap())
        .unwrap()
        .encode()
}

pub fn provision(t: &dyn CloudTenant, anchor: &str, upn: &str) {
    t.provision_synced_user(&SyncedUserSpec {
        source_anchor: anchor.into(),
        user_principal_name: upn.into(),
        display_name: Some(upn.split('@').next().unwrap().into()),
        enabled: true,
    })
    .unwrap();
}

pub fn synced(
    anchor: &str,
    password: &str,
    changed_at: Timestamp,
    force: bool,
) -> SyncedCredential {
    SyncedCredential {
        source_anchor: anchor.into(),
        digest: digest_of(password),
        changed_at,
        force_change_at_next_sign_in: force,
    }
}
