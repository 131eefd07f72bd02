//! Tenants for the rule tests: every store the tenant rules run on, each with a clock the
//! test controls. Add a store here and every rule test runs against it.
#![allow(dead_code)]

use std::sync::Arc;

use phsync_hash::{NtHash, PhsDigest};
use phsync_tenant::{
    self as cloud, CloudTenant, ManualClock, SyncedCredential, SyncedUserSpec, Timestamp,
};
use zeroize::Zeroizing;

pub struct TestTenant {
    pub name: &'static str,
    pub tenant: Box<dyn CloudTenant>,
    pub clock: Arc<ManualClock>,
    /// What `cloud::open` takes: a file path or a postgres:// URL.
    pub target: String,
    _dir: TempDir,
    _db: Option<TestDatabase>,
}

impl TestTenant {
    /// Every row of `table` as text, straight from the store (not through the API).
    pub fn raw_rows(&self, table: &str) -> Vec<String> {
        if self.name == "postgresql" {
            let mut c = postgres::Client::connect(&self.target, postgres::NoTls).unwrap();
            c.query(&format!("SELECT t::text FROM {table} t"), &[])
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect()
        } else {
            let db = rusqlite::Connection::open(&self.target).unwrap();
            let mut stmt = db.prepare(&format!("SELECT * FROM {table}")).unwrap();
            let columns = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            let mut out = Vec::new();
            while let Some(row) = rows.next().unwrap() {
                let mut line = String::new();
                for i in 0..columns {
                    let v: rusqlite::types::Value = row.get(i).unwrap();
                    line += &format!("{v:?}|");
                }
                out.push(line);
            }
            out
        }
    }
}

/// The PostgreSQL server the tests use (`scripts/pg-lab/pg.sh up` prints it).
pub fn postgres_url() -> String {
    std::env::var("PHSYNC_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "PHSYNC_TEST_POSTGRES is not set: start the PostgreSQL lab with \
             `bash scripts/pg-lab/pg.sh up` and `eval \"$(bash scripts/pg-lab/pg.sh env)\"` \
             (scripts/test does both)"
        )
    })
}

/// A database of its own for one test, dropped afterwards.
pub struct TestDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let admin_url = postgres_url();
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let tag: String = tag
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let name = format!("phsync_{tag}_{}_{n}_{nanos}", std::process::id());
        let mut c = postgres::Client::connect(&admin_url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot reach the PostgreSQL lab: {e}"));
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let base = admin_url.rsplit_once('/').unwrap().0;
        let url = format!("{base}/{name}");
        TestDatabase {
            admin_url,
            name,
            url,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
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
    let sqlite = TestTenant {
        name: "sqlite",
        tenant,
        clock,
        target,
        _dir: dir,
        _db: None,
    };
    let db = TestDatabase::new("rules");
    let clock = Arc::new(ManualClock::new(T0));
    let tenant = cloud::open_with_clock(&db.url, "test", clock.clone()).unwrap();
    let pg = TestTenant {
        name: "postgresql",
        tenant,
        clock,
        target: db.url.clone(),
        _dir: TempDir::new("tenant-pg"),
        _db: Some(db),
    };
    vec![sqlite, pg]
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
        leak_check: None,
    }
}

/// Syncs `password` to `anchor` at [`T0`] as the engine does when the hash is in the leaked
/// list (`breach_count` from it, sign-in not blocked). Returns the digest sent, for the
/// tests that check no output shows it.
pub fn sync_leaked(
    t: &dyn CloudTenant,
    anchor: &str,
    password: &str,
    breach_count: Option<u64>,
) -> Zeroizing<String> {
    let mut credential = synced(anchor, password, T0, false);
    credential.leak_check = Some(cloud::LeakCheck::leaked(breach_count, false));
    t.apply_synced_credential(&credential).unwrap();
    credential.digest
}
