//! The SQLite tenant file: another application's database is refused untouched, earlier
//! phsync files migrate, deleted secrets do not linger in the file.

use phsync_tenant::{open_store, CloudError, CloudTenant, LocalTenant, SyncedUserSpec};
use phsync_testkit::tenant::*;

/// Everything a refused open must leave as it was: the bytes, and no side files.
fn snapshot(path: &std::path::Path) -> (Vec<u8>, bool, bool) {
    let side = |s: &str| std::path::PathBuf::from(format!("{}{s}", path.display())).exists();
    (std::fs::read(path).unwrap(), side("-wal"), side("-journal"))
}

fn refused(path: &std::path::Path) -> String {
    let before = snapshot(path);
    let e = phsync_tenant::SqliteStore::open(path)
        .err()
        .expect("refused");
    let CloudError::TenantFile { message, .. } = &e else {
        panic!("{e:?}");
    };
    assert_eq!(snapshot(path), before, "{message}: the file changed");
    // Still the other application's: its journal mode was not switched to WAL.
    let db = rusqlite::Connection::open(path).unwrap();
    let mode: String = db
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    message.clone()
}

#[test]
fn another_applications_database_is_refused_untouched() {
    let dir = TempDir::new("foreign");
    let cases = [
        (
            "users.db",
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT);
             INSERT INTO users (name, email) VALUES ('ann', 'ann@example.test');",
        ),
        (
            "notes.db",
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
             INSERT INTO notes (body) VALUES ('keep me');",
        ),
        (
            "versioned.db",
            "CREATE TABLE things (id INTEGER PRIMARY KEY); PRAGMA user_version = 7;",
        ),
        (
            "other-meta.db",
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO meta VALUES ('application', 'something-else');
             PRAGMA user_version = 3;",
        ),
    ];
    for (name, sql) in cases {
        let path = dir.0.join(name);
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        let message = refused(&path);
        assert!(
            message.starts_with("not a phsync tenant file: "),
            "{name}: {message}"
        );
    }
    // Not an SQLite database at all.
    let path = dir.0.join("text.db");
    std::fs::write(&path, "just some text, not a database\n".repeat(200)).unwrap();
    let before = std::fs::read(&path).unwrap();
    let e = phsync_tenant::SqliteStore::open(&path)
        .err()
        .expect("refused");
    assert!(matches!(e, CloudError::TenantFile { .. }), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

/// Schemas 1 and 2 as earlier phsync versions wrote them.
const SCHEMA_1: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE users (
    id INTEGER PRIMARY KEY, upn TEXT NOT NULL, upn_key TEXT NOT NULL UNIQUE,
    source_anchor TEXT UNIQUE, display_name TEXT, enabled INTEGER NOT NULL,
    origin TEXT NOT NULL CHECK (origin IN ('synced', 'cloud')),
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE credentials (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    source TEXT NOT NULL CHECK (source IN ('synced', 'cloud')), secret TEXT NOT NULL,
    changed_at INTEGER NOT NULL, applied_at INTEGER NOT NULL, force_change INTEGER NOT NULL);
CREATE TABLE lockouts (
    upn_key TEXT PRIMARY KEY, failures INTEGER NOT NULL, window_start INTEGER NOT NULL,
    locked_until INTEGER, salt BLOB NOT NULL, recent BLOB NOT NULL);
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, upn TEXT, source_anchor TEXT, outcome TEXT NOT NULL, detail TEXT);
INSERT INTO users (upn, upn_key, source_anchor, enabled, origin, created_at, updated_at)
    VALUES ('Old@phs.test', 'old@phs.test', 'T0xE', 1, 'synced', 1, 1);
INSERT INTO audit (at, actor, action, outcome) VALUES (1, 'test', 'user.sync', 'created');
PRAGMA user_version = 1;
";

const SCHEMA_2: &str = "
ALTER TABLE users ADD COLUMN source TEXT;
CREATE INDEX users_source ON users(source);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY, name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('agent', 'admin')), source TEXT,
    secret_hash BLOB NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER);
UPDATE users SET source = 'b';
PRAGMA user_version = 2;
";

fn meta_application(path: &std::path::Path) -> (Option<String>, i64) {
    let db = rusqlite::Connection::open(path).unwrap();
    let app = db
        .query_row(
            "SELECT value FROM meta WHERE key = 'application'",
            [],
            |r| r.get(0),
        )
        .ok();
    let version = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    (app, version)
}

#[test]
fn files_of_earlier_phsync_versions_migrate_and_new_ones_are_marked() {
    let dir = TempDir::new("legacy");
    for (name, sql) in [
        ("v1.db", SCHEMA_1.to_string()),
        ("v2.db", format!("{SCHEMA_1}{SCHEMA_2}")),
    ] {
        let path = dir.0.join(name);
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(&sql)
            .unwrap();
        let store = open_store(path.to_str().unwrap()).unwrap();
        let clock = std::sync::Arc::new(phsync_tenant::ManualClock::new(T0));
        let admin = LocalTenant::new(store.clone(), clock.clone());
        assert!(admin.user("old@phs.test").unwrap().is_some(), "{name}");
        assert_eq!(
            meta_application(&path),
            (Some("phsync-tenant".to_string()), 4)
        );
        if name == "v2.db" {
            // Source b's user from before the migration: its anchor is b's.
            let a = LocalTenant::new(store, clock).with_source(Some("a".into()));
            let e = a
                .provision_synced_user(&SyncedUserSpec {
                    source_anchor: "T0xE".into(),
                    user_principal_name: "grab@a.test".into(),
                    display_name: None,
                    enabled: true,
                })
                .unwrap_err();
            assert!(matches!(e, CloudError::AnchorOwned(_)), "{e}");
        }
    }
    let path = dir.0.join("new.db");
    phsync_tenant::open(path.to_str().unwrap(), "test")
        .unwrap()
        .add_cloud_user("n@phs.test", None)
        .unwrap();
    assert_eq!(
        meta_application(&path),
        (Some("phsync-tenant".to_string()), 4)
    );
    // And a marked file opens again.
    phsync_tenant::open(path.to_str().unwrap(), "test").unwrap();
}

/// The tenant file's bytes once its WAL is checkpointed into it.
fn checkpointed_bytes(path: &str) -> Vec<u8> {
    let db = rusqlite::Connection::open(path).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    let busy: i64 = db
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 0, "checkpoint blocked");
    std::fs::read(path).unwrap()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn a_deleted_users_secrets_do_not_stay_in_the_file() {
    let dir = TempDir::new("secure-delete");
    let target = dir.0.join("tenant.db").display().to_string();
    let tenant = phsync_tenant::open(&target, "test").unwrap();
    {
        let tn = tenant.as_ref();
        provision(tn, "anchor-gone", "gone@phs.test");
        let cred = synced("anchor-gone", "Deleted-Passw0rd", T0, false);
        let key = cred.digest.split(',').nth(3).unwrap().trim_end_matches(';');
        let key = key.to_string();
        tn.apply_synced_credential(&cred).unwrap();
        tn.add_cloud_user("cloud-gone@phs.test", None).unwrap();
        tn.set_password(
            "cloud-gone@phs.test",
            &utf16("Deleted-Cloud-Passw0rd"),
            false,
        )
        .unwrap();
        let phc: String = rusqlite::Connection::open(&target)
            .unwrap()
            .query_row(
                "SELECT secret FROM credentials WHERE source = 'cloud'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let argon_hash = phc.rsplit('$').next().unwrap().to_string();
        assert!(argon_hash.len() >= 40, "{} chars", argon_hash.len());
        let bytes = checkpointed_bytes(&target);
        assert!(
            contains(&bytes, &key),
            "the digest is in the file while the user exists"
        );
        assert!(contains(&bytes, &argon_hash));

        tn.delete_user("gone@phs.test").unwrap();
        tn.delete_user("cloud-gone@phs.test").unwrap();
        let bytes = checkpointed_bytes(&target);
        assert!(
            !contains(&bytes, &key),
            "a deleted user's digest is left in the file"
        );
        assert!(
            !contains(&bytes, &argon_hash),
            "a deleted user's hash is left in the file"
        );
    }
}
