//! The embedded tenant: one SQLite file (WAL, mode 0600). Write transactions are
//! `BEGIN IMMEDIATE`, so writers in other processes queue behind the busy timeout instead
//! of failing or interleaving.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row};
use zeroize::Zeroizing;

use super::limits::shown;
use super::store::{
    AuditRow, CredentialRow, LockoutRow, NewUser, RiskRow, Savepoint, SessionRow, StoreStats,
    StoreTx, TenantStore, TokenRole, TokenRow, UserKey, UserRow,
};
use super::{
    upn_key, CloudError, CloudResult, Origin, PasswordSource, RiskKind, TenantSettings, Timestamp,
};

/// Migrations in order; `PRAGMA user_version` counts those applied. Never edit one that
/// has shipped: add the next.
const MIGRATIONS: &[&str] = &[MIGRATION_1, MIGRATION_2, MIGRATION_3, MIGRATION_4];
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const MIGRATION_1: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY,
    upn           TEXT NOT NULL,
    upn_key       TEXT NOT NULL UNIQUE,
    source_anchor TEXT UNIQUE,
    display_name  TEXT,
    enabled       INTEGER NOT NULL,
    origin        TEXT NOT NULL CHECK (origin IN ('synced', 'cloud')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS credentials (
    user_id      INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    source       TEXT NOT NULL CHECK (source IN ('synced', 'cloud')),
    secret       TEXT NOT NULL,
    changed_at   INTEGER NOT NULL,
    applied_at   INTEGER NOT NULL,
    force_change INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS lockouts (
    upn_key      TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    locked_until INTEGER,
    salt         BLOB NOT NULL,
    recent       BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash BLOB PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    upn           TEXT,
    source_anchor TEXT,
    outcome       TEXT NOT NULL,
    detail        TEXT
);
";

const MIGRATION_2: &str = "
ALTER TABLE users ADD COLUMN source TEXT;
CREATE INDEX users_source ON users(source);
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('agent', 'admin')),
    source      TEXT,
    secret_hash BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
";

/// Ownership of anchors and domains by sync sources (issue 15), the index that finds a
/// domain's users and the one that finds a user's sessions, and the application marker.
/// Anchors of existing synced users are claimed by their sources.
const MIGRATION_3: &str = "
CREATE TABLE anchor_claims (anchor TEXT PRIMARY KEY, source TEXT NOT NULL);
INSERT OR IGNORE INTO anchor_claims (anchor, source)
    SELECT source_anchor, source FROM users
    WHERE source IS NOT NULL AND source_anchor IS NOT NULL;
CREATE TABLE domain_claims (domain TEXT PRIMARY KEY, source TEXT NOT NULL);
CREATE INDEX users_domain ON users(substr(upn_key, instr(upn_key, '@') + 1));
CREATE INDEX sessions_user ON sessions(user_id);
INSERT OR REPLACE INTO meta (key, value) VALUES ('application', 'phsync-tenant');
";

/// Risk marks against users' current passwords (issue 18): one row per user and kind,
/// with no hash, gone with the user.
const MIGRATION_4: &str = "
CREATE TABLE risks (
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('leaked_credentials')),
    detected_at  INTEGER NOT NULL,
    breach_count INTEGER,
    PRIMARY KEY (user_id, kind)
);
";

/// What `meta.application` says in a phsync tenant file (from schema 3 on).
const APPLICATION: &str = "phsync-tenant";

/// The tables phsync creates, with the columns of each that its first schema already had
/// (later migrations only add). A file holding anything else is not a tenant file.
const KNOWN_TABLES: &[(&str, &[&str])] = &[
    ("meta", &["key", "value"]),
    (
        "users",
        &[
            "id",
            "upn",
            "upn_key",
            "source_anchor",
            "display_name",
            "enabled",
            "origin",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "credentials",
        &[
            "user_id",
            "source",
            "secret",
            "changed_at",
            "applied_at",
            "force_change",
        ],
    ),
    (
        "lockouts",
        &[
            "upn_key",
            "failures",
            "window_start",
            "locked_until",
            "salt",
            "recent",
        ],
    ),
    (
        "sessions",
        &["token_hash", "user_id", "created_at", "expires_at"],
    ),
    (
        "audit",
        &[
            "id",
            "at",
            "actor",
            "action",
            "upn",
            "source_anchor",
            "outcome",
            "detail",
        ],
    ),
    (
        "tokens",
        &[
            "id",
            "name",
            "role",
            "source",
            "secret_hash",
            "created_at",
            "revoked_at",
        ],
    ),
    ("anchor_claims", &["anchor", "source"]),
    ("domain_claims", &["domain", "source"]),
    ("risks", &["user_id", "kind", "detected_at", "breach_count"]),
    // SQLite's own, for the audit table's AUTOINCREMENT.
    ("sqlite_sequence", &["name", "seq"]),
];

/// Refuse a file that is not a phsync tenant file (another application's database) before
/// anything writes to it: no table created, no column added, no journal mode switched.
/// An empty database is a new tenant file.
/// Switch a file to WAL. Two processes opening a new file at once can both hold a shared
/// lock and both need an exclusive one for the switch: SQLite then answers one of them
/// "database is locked" at once, without its busy handler (waiting would deadlock). That
/// one retries, within the busy timeout, by which time the other has switched the file.
fn enable_wal(conn: &Connection) -> rusqlite::Result<String> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn check_signature(conn: &Connection, path: &Path) -> CloudResult<()> {
    let not_ours = |why: String| file_error(path, format!("not a phsync tenant file: {why}"));
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| not_ours(e.to_string()))?;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()
        })
        .map_err(|e| not_ours(e.to_string()))?;
    if tables.is_empty() && version == 0 {
        return Ok(());
    }
    let marker: Option<String> = if tables.iter().any(|t| t == "meta") {
        conn.query_row(
            "SELECT value FROM meta WHERE key = 'application'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| not_ours(format!("its meta table is not phsync's ({e})")))?
    } else {
        None
    };
    match marker.as_deref() {
        Some(APPLICATION) if version > SCHEMA_VERSION => {
            // A newer phsync may have added tables: say so rather than "not ours".
            return Err(file_error(
                path,
                format!(
                    "written by a newer phsync (schema {version}, this one knows {SCHEMA_VERSION})"
                ),
            ));
        }
        Some(APPLICATION) => {}
        Some(_) => return Err(not_ours("its meta table names another application".into())),
        // Files of schema 1 and 2 have no marker; a newer one always has.
        None if version > 2 => {
            return Err(not_ours(format!(
                "user_version {version} without phsync's marker"
            )))
        }
        None => {}
    }
    if version > 0 && !tables.iter().any(|t| t == "users") {
        return Err(not_ours(format!(
            "user_version {version} but no users table"
        )));
    }
    for table in &tables {
        if table.starts_with("sqlite_") && table != "sqlite_sequence" {
            // SQLite's own statistics tables (ANALYZE).
            continue;
        }
        let Some((_, columns)) = KNOWN_TABLES.iter().find(|(name, _)| name == table) else {
            return Err(not_ours(format!(
                "it holds a table {} that phsync does not know",
                crate::limits::shown(table)
            )));
        };
        let have: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info(?1)")
            .and_then(|mut stmt| {
                stmt.query_map([table], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()
            })
            .map_err(|e| not_ours(e.to_string()))?;
        if let Some(missing) = columns.iter().find(|c| !have.iter().any(|h| h == *c)) {
            return Err(not_ours(format!(
                "its table {table} has no column {missing}"
            )));
        }
    }
    Ok(())
}

/// How long a writer waits for another (process, thread or replica) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> CloudError {
    CloudError::TenantFile {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Create the file 0600 before SQLite touches it (SQLite gives its -wal and -shm files the
/// database file's mode).
fn prepare_file(path: &Path) -> CloudResult<()> {
    crate::private_file::ensure_private_file(path)
        .map_err(|e| file_error(path, format!("cannot create a private (0600) file: {e}")))
}

impl SqliteStore {
    /// Open (creating on first use) the tenant file at `path`.
    pub fn open(path: &Path) -> CloudResult<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.is_dir() {
                return Err(file_error(
                    path,
                    format!("directory {} does not exist", parent.display()),
                ));
            }
        }
        // A link in the file's place is refused before SQLite follows it to another file.
        crate::private_file::refuse_symlink(path).map_err(|e| file_error(path, e))?;
        // An existing file is checked before anything touches it, its mode included.
        let existed = path.exists();
        if !existed {
            prepare_file(path)?;
        }
        let conn = Connection::open(path).map_err(|e| file_error(path, e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(CloudError::storage)?;
        check_signature(&conn, path)?;
        if existed {
            prepare_file(path)?;
        }
        let mode =
            enable_wal(&conn).map_err(|e| file_error(path, format!("cannot enable WAL ({e})")))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(file_error(
                path,
                format!("cannot enable WAL (journal mode {mode})"),
            ));
        }
        // secure_delete: a deleted user's digest (or a replaced one) is overwritten with
        // zeros, not left in free pages of the file.
        conn.execute_batch(
            "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL; PRAGMA secure_delete=ON;",
        )
        .map_err(CloudError::storage)?;
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(CloudError::storage)?;
        let migrated = (|| -> CloudResult<()> {
            let version: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(CloudError::storage)?;
            if version > SCHEMA_VERSION {
                return Err(file_error(
                    path,
                    format!("written by a newer phsync (schema {version}, this one knows {SCHEMA_VERSION})"),
                ));
            }
            for migration in &MIGRATIONS[version as usize..] {
                conn.execute_batch(migration).map_err(CloudError::storage)?;
            }
            conn.execute_batch(&format!("PRAGMA user_version={SCHEMA_VERSION}"))
                .map_err(CloudError::storage)?;
            Ok(())
        })();
        match migrated {
            Ok(()) => conn.execute_batch("COMMIT").map_err(CloudError::storage)?,
            Err(e) => {
                conn.execute_batch("ROLLBACK").ok();
                return Err(e);
            }
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl TenantStore for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn write(&self) -> CloudResult<Box<dyn StoreTx + '_>> {
        let conn = self.conn.lock().map_err(|_| {
            CloudError::Storage("tenant connection poisoned by an earlier panic".into())
        })?;
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(CloudError::storage)?;
        Ok(Box::new(SqliteTx { conn, done: false }))
    }
}

struct SqliteTx<'a> {
    conn: MutexGuard<'a, Connection>,
    done: bool,
}

impl Drop for SqliteTx<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

fn origin_from(s: &str) -> Origin {
    if s == "cloud" {
        Origin::Cloud
    } else {
        Origin::Synced
    }
}

fn source_str(s: PasswordSource) -> &'static str {
    match s {
        PasswordSource::Synced => "synced",
        PasswordSource::Cloud => "cloud",
    }
}

const USER_COLUMNS: &str =
    "id, upn, source_anchor, display_name, enabled, origin, created_at, updated_at, source";

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: r.get(0)?,
        upn: r.get(1)?,
        source_anchor: r.get(2)?,
        display_name: r.get(3)?,
        enabled: r.get(4)?,
        origin: origin_from(&r.get::<_, String>(5)?),
        created_at: Timestamp::from_unix_micros(r.get(6)?),
        updated_at: Timestamp::from_unix_micros(r.get(7)?),
        source: r.get(8)?,
    })
}

const TOKEN_COLUMNS: &str = "id, name, role, source, secret_hash, created_at, revoked_at";

fn token_from_row(r: &Row<'_>) -> rusqlite::Result<TokenRow> {
    let hash: Vec<u8> = r.get(4)?;
    Ok(TokenRow {
        id: r.get(0)?,
        name: r.get(1)?,
        role: TokenRole::parse(&r.get::<_, String>(2)?).unwrap_or(TokenRole::Agent),
        source: r.get(3)?,
        // A malformed stored hash matches nothing.
        secret_hash: hash.try_into().unwrap_or([0xff; 32]),
        created_at: Timestamp::from_unix_micros(r.get(5)?),
        revoked_at: r.get::<_, Option<i64>>(6)?.map(Timestamp::from_unix_micros),
    })
}

/// The risks query. One user's marks (read for every credential a sync applies) go by the
/// key: a filter like `?1 IS NULL OR id = ?1` cannot use it, and scanned every user per
/// credential (a full sync of 20,000 users spent 18 s of 30 in it).
fn risks_sql(one_user: bool) -> String {
    // One user: by the key, its marks in kind order (ordering by upn_key as the listing does
    // made SQLite walk the users in that order to find the one).
    let (filter, order) = if one_user {
        ("risks.user_id = ?1", "kind")
    } else {
        ("?1 IS NULL", "upn_key, kind")
    };
    format!(
        "SELECT {USER_COLUMNS}, kind, detected_at, breach_count
         FROM risks JOIN users ON users.id = risks.user_id
         WHERE {filter} AND (?2 IS NULL OR source = ?2)
         ORDER BY {order}"
    )
}

fn audit_from_row(r: &Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        at: Timestamp::from_unix_micros(r.get(0)?),
        actor: r.get(1)?,
        action: r.get(2)?,
        upn: r.get(3)?,
        source_anchor: r.get(4)?,
        outcome: r.get(5)?,
        detail: r.get(6)?,
    })
}

/// Unique-constraint failures become the conflict the caller can act on.
fn map_unique(e: rusqlite::Error, upn: &str, anchor: Option<&str>) -> CloudError {
    let text = e.to_string();
    if text.contains("UNIQUE") && text.contains("source_anchor") {
        CloudError::AnchorConflict(shown(anchor.unwrap_or_default()))
    } else if text.contains("UNIQUE") && text.contains("upn_key") {
        CloudError::UpnConflict(shown(upn))
    } else {
        CloudError::Storage(text)
    }
}

impl SqliteTx<'_> {
    /// Insert or replace a user's credential; with `only_if_newer`, only over an older one
    /// (decided inside the statement). Whether a row was written.
    fn upsert_credential(
        &mut self,
        user_id: i64,
        c: &CredentialRow,
        only_if_newer: bool,
    ) -> CloudResult<bool> {
        let condition = if only_if_newer {
            " WHERE credentials.changed_at < excluded.changed_at"
        } else {
            ""
        };
        let written = self.conn.execute(
            &format!(
                "INSERT INTO credentials (user_id, source, secret, changed_at, applied_at, force_change)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(user_id) DO UPDATE SET source = excluded.source, secret = excluded.secret,
                   changed_at = excluded.changed_at, applied_at = excluded.applied_at,
                   force_change = excluded.force_change{condition}"
            ),
            params![
                user_id,
                source_str(c.source),
                c.secret.as_str(),
                c.changed_at.unix_micros(),
                c.applied_at.unix_micros(),
                c.force_change
            ],
        ).map_err(CloudError::storage)?;
        Ok(written == 1)
    }
}

impl StoreTx for SqliteTx<'_> {
    fn user(&mut self, key: UserKey<'_>) -> CloudResult<Option<UserRow>> {
        let (column, value): (&str, rusqlite::types::Value) = match key {
            UserKey::Id(id) => ("id", id.into()),
            UserKey::Upn(k) => ("upn_key", k.to_string().into()),
            UserKey::Anchor(a) => ("source_anchor", a.to_string().into()),
        };
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE {column} = ?1");
        self.conn
            .query_row(&sql, [value], user_from_row)
            .optional()
            .map_err(CloudError::storage)
    }

    fn users(&mut self, source: Option<&str>) -> CloudResult<Vec<UserRow>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE ?1 IS NULL OR source = ?1 ORDER BY upn_key"
            ))
            .map_err(CloudError::storage)?;
        let rows = stmt
            .query_map([source], user_from_row)
            .map_err(CloudError::storage)?;
        rows.collect::<Result<_, _>>().map_err(CloudError::storage)
    }

    fn insert_user(&mut self, u: &NewUser<'_>) -> CloudResult<UserRow> {
        self.conn
            .execute(
                "INSERT INTO users (upn, upn_key, source_anchor, display_name, enabled, origin, created_at, updated_at, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
                params![
                    u.upn,
                    upn_key(u.upn),
                    u.source_anchor,
                    u.display_name,
                    u.enabled,
                    u.origin.as_str(),
                    u.now.unix_micros(),
                    u.source
                ],
            )
            .map_err(|e| map_unique(e, u.upn, u.source_anchor))?;
        let id = self.conn.last_insert_rowid();
        self.user(UserKey::Id(id))?
            .ok_or_else(|| CloudError::Storage("inserted user vanished".into()))
    }

    fn update_user(&mut self, u: &UserRow) -> CloudResult<()> {
        self.conn
            .execute(
                "UPDATE users SET upn = ?2, upn_key = ?3, source_anchor = ?4, display_name = ?5,
                 enabled = ?6, origin = ?7, updated_at = ?8, source = ?9 WHERE id = ?1",
                params![
                    u.id,
                    u.upn,
                    upn_key(&u.upn),
                    u.source_anchor,
                    u.display_name,
                    u.enabled,
                    u.origin.as_str(),
                    u.updated_at.unix_micros(),
                    u.source
                ],
            )
            .map_err(|e| map_unique(e, &u.upn, u.source_anchor.as_deref()))?;
        Ok(())
    }

    fn delete_user(&mut self, user_id: i64) -> CloudResult<()> {
        self.conn
            .execute("DELETE FROM users WHERE id = ?1", [user_id])
            .map_err(CloudError::storage)?;
        Ok(())
    }

    fn credential(&mut self, user_id: i64) -> CloudResult<Option<CredentialRow>> {
        self
            .conn
            .query_row(
                "SELECT source, secret, changed_at, applied_at, force_change FROM credentials WHERE user_id = ?1",
                [user_id],
                |r| {
                    Ok(CredentialRow {
                        source: if r.get::<_, String>(0)? == "cloud" {
                            PasswordSource::Cloud
                        } else {
                            PasswordSource::Synced
                        },
                        secret: Zeroizing::new(r.get(1)?),
                        changed_at: Timestamp::from_unix_micros(r.get(2)?),
                        applied_at: Timestamp::from_unix_micros(r.get(3)?),
                        force_change: r.get(4)?,
                    })
                },
            )
            .optional().map_err(CloudError::storage)
    }

    fn put_credential(&mut self, user_id: i64, c: &CredentialRow) -> CloudResult<()> {
        self.upsert_credential(user_id, c, false)?;
        Ok(())
    }

    fn put_credential_if_newer(
        &mut self,
        user_id: i64,
        c: &CredentialRow,
    ) -> CloudResult<Option<Timestamp>> {
        if self.upsert_credential(user_id, c, true)? {
            return Ok(None);
        }
        let current: i64 = self
            .conn
            .query_row(
                "SELECT changed_at FROM credentials WHERE user_id = ?1",
                [user_id],
                |r| r.get(0),
            )
            .map_err(CloudError::storage)?;
        Ok(Some(Timestamp::from_unix_micros(current)))
    }

    fn lockout(&mut self, key: &str) -> CloudResult<Option<LockoutRow>> {
        self
            .conn
            .query_row(
                "SELECT failures, window_start, locked_until, salt, recent FROM lockouts WHERE upn_key = ?1",
                [key],
                |r| {
                    let salt: Vec<u8> = r.get(3)?;
                    let recent: Vec<u8> = r.get(4)?;
                    Ok(LockoutRow {
                        upn_key: key.to_string(),
                        failures: r.get(0)?,
                        window_start: Timestamp::from_unix_micros(r.get(1)?),
                        locked_until: r.get::<_, Option<i64>>(2)?.map(Timestamp::from_unix_micros),
                        salt: salt.try_into().unwrap_or([0; 10]),
                        recent: recent
                            .chunks_exact(32)
                            .map(|c| c.try_into().expect("32-byte chunk"))
                            .collect(),
                    })
                },
            )
            .optional().map_err(CloudError::storage)
    }

    fn put_lockout(&mut self, row: &LockoutRow) -> CloudResult<()> {
        let recent: Vec<u8> = row.recent.iter().flatten().copied().collect();
        self.conn
            .execute(
                "INSERT INTO lockouts (upn_key, failures, window_start, locked_until, salt, recent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(upn_key) DO UPDATE SET failures = excluded.failures,
               window_start = excluded.window_start, locked_until = excluded.locked_until,
               salt = excluded.salt, recent = excluded.recent",
                params![
                    row.upn_key,
                    row.failures,
                    row.window_start.unix_micros(),
                    row.locked_until.map(Timestamp::unix_micros),
                    row.salt.as_slice(),
                    recent
                ],
            )
            .map_err(CloudError::storage)?;
        Ok(())
    }

    fn delete_lockout(&mut self, key: &str) -> CloudResult<()> {
        self.conn
            .execute("DELETE FROM lockouts WHERE upn_key = ?1", [key])
            .map_err(CloudError::storage)?;
        Ok(())
    }

    fn insert_session(&mut self, s: &SessionRow) -> CloudResult<()> {
        self.conn.execute(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                s.token_hash.as_slice(),
                s.user_id,
                s.created_at.unix_micros(),
                s.expires_at.unix_micros()
            ],
        ).map_err(CloudError::storage)?;
        Ok(())
    }

    fn session(&mut self, token_hash: &[u8; 32]) -> CloudResult<Option<SessionRow>> {
        self.conn
            .query_row(
                "SELECT user_id, created_at, expires_at FROM sessions WHERE token_hash = ?1",
                [token_hash.as_slice()],
                |r| {
                    Ok(SessionRow {
                        token_hash: *token_hash,
                        user_id: r.get(0)?,
                        created_at: Timestamp::from_unix_micros(r.get(1)?),
                        expires_at: Timestamp::from_unix_micros(r.get(2)?),
                    })
                },
            )
            .optional()
            .map_err(CloudError::storage)
    }

    fn anchor_claim(&mut self, anchor: &str) -> CloudResult<Option<String>> {
        self.conn
            .query_row(
                "SELECT source FROM anchor_claims WHERE anchor = ?1",
                [anchor],
                |r| r.get(0),
            )
            .optional()
            .map_err(CloudError::storage)
    }

    fn claim_anchor(&mut self, anchor: &str, source: &str) -> CloudResult<()> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO anchor_claims (anchor, source) VALUES (?1, ?2)",
                [anchor, source],
            )
            .map_err(CloudError::storage)?;
        Ok(())
    }

    fn domain_claim(&mut self, domain: &str) -> CloudResult<Option<String>> {
        self.conn
            .query_row(
                "SELECT source FROM domain_claims WHERE domain = ?1",
                [domain],
                |r| r.get(0),
            )
            .optional()
            .map_err(CloudError::storage)
    }

    fn claim_domain(&mut self, domain: &str, source: &str) -> CloudResult<()> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO domain_claims (domain, source) VALUES (?1, ?2)",
                [domain, source],
            )
            .map_err(CloudError::storage)?;
        Ok(())
    }

    fn domain_has_others(&mut self, domain: &str, source: &str) -> CloudResult<bool> {
        // The expression is the one `users_domain` indexes.
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM users
                 WHERE substr(upn_key, instr(upn_key, '@') + 1) = ?1
                   AND (source IS NULL OR source <> ?2 OR origin <> 'synced'))",
                [domain, source],
                |r| r.get(0),
            )
            .map_err(CloudError::storage)
    }

    fn delete_sessions(&mut self, user_id: i64, keep: Option<&[u8; 32]>) -> CloudResult<u64> {
        let n = self
            .conn
            .execute(
                "DELETE FROM sessions WHERE user_id = ?1 AND (?2 IS NULL OR token_hash <> ?2)",
                params![user_id, keep.map(|k| k.as_slice())],
            )
            .map_err(CloudError::storage)?;
        Ok(n as u64)
    }

    fn append_audit(&mut self, a: &AuditRow) -> CloudResult<()> {
        self.conn
            .execute(
                "INSERT INTO audit (at, actor, action, upn, source_anchor, outcome, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    a.at.unix_micros(),
                    a.actor,
                    a.action,
                    a.upn,
                    a.source_anchor,
                    a.outcome,
                    a.detail
                ],
            )
            .map_err(CloudError::storage)?;
        Ok(())
    }

    fn audit(&mut self, limit: usize) -> CloudResult<Vec<AuditRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT at, actor, action, upn, source_anchor, outcome, detail FROM audit
             ORDER BY id DESC LIMIT ?1",
            )
            .map_err(CloudError::storage)?;
        let rows = stmt
            .query_map([limit as i64], audit_from_row)
            .map_err(CloudError::storage)?;
        rows.collect::<Result<_, _>>().map_err(CloudError::storage)
    }

    fn settings(&mut self) -> CloudResult<TenantSettings> {
        let json: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'settings'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(CloudError::storage)?;
        match json {
            None => Ok(TenantSettings::default()),
            Some(j) => serde_json::from_str(&j)
                .map_err(|e| CloudError::Storage(format!("stored settings are unreadable: {e}"))),
        }
    }

    fn put_settings(&mut self, settings: &TenantSettings) -> CloudResult<()> {
        let json = serde_json::to_string(settings).expect("settings serialize");
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES ('settings', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [json],
            )
            .map_err(CloudError::storage)?;
        Ok(())
    }

    fn insert_token(&mut self, t: &TokenRow) -> CloudResult<()> {
        self.conn
            .execute(
                "INSERT INTO tokens (id, name, role, source, secret_hash, created_at, revoked_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    t.id,
                    t.name,
                    t.role.as_str(),
                    t.source,
                    t.secret_hash.as_slice(),
                    t.created_at.unix_micros(),
                    t.revoked_at.map(Timestamp::unix_micros)
                ],
            )
            .map_err(CloudError::storage)?;
        Ok(())
    }

    fn token(&mut self, id: &str) -> CloudResult<Option<TokenRow>> {
        self.conn
            .query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1"),
                [id],
                token_from_row,
            )
            .optional()
            .map_err(CloudError::storage)
    }

    fn tokens(&mut self) -> CloudResult<Vec<TokenRow>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id"
            ))
            .map_err(CloudError::storage)?;
        let rows = stmt
            .query_map([], token_from_row)
            .map_err(CloudError::storage)?;
        rows.collect::<Result<_, _>>().map_err(CloudError::storage)
    }

    fn revoke_token(&mut self, id: &str, at: Timestamp) -> CloudResult<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, at.unix_micros()],
            )
            .map_err(CloudError::storage)?;
        Ok(n == 1)
    }

    fn risks(
        &mut self,
        user_id: Option<i64>,
        source: Option<&str>,
    ) -> CloudResult<Vec<(UserRow, RiskRow)>> {
        let mut stmt = self
            .conn
            .prepare_cached(&risks_sql(user_id.is_some()))
            .map_err(CloudError::storage)?;
        let rows = stmt
            .query_map(params![user_id, source], |r| {
                let user = user_from_row(r)?;
                let kind: String = r.get(9)?;
                let breach_count: Option<i64> = r.get(11)?;
                Ok((user, kind, r.get::<_, i64>(10)?, breach_count))
            })
            .map_err(CloudError::storage)?;
        let mut out = Vec::new();
        for row in rows {
            let (user, kind, detected_at, breach_count) = row.map_err(CloudError::storage)?;
            let kind = RiskKind::parse(&kind).ok_or_else(|| {
                CloudError::Storage(format!("unknown risk kind {}", shown(&kind)))
            })?;
            let risk = RiskRow {
                user_id: user.id,
                kind,
                detected_at: Timestamp::from_unix_micros(detected_at),
                breach_count: breach_count.map(|n| n as u64),
            };
            out.push((user, risk));
        }
        Ok(out)
    }

    fn put_risk(&mut self, row: &RiskRow) -> CloudResult<()> {
        self.conn
            .execute(
                "INSERT INTO risks (user_id, kind, detected_at, breach_count) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(user_id, kind) DO UPDATE SET detected_at = excluded.detected_at,
                   breach_count = excluded.breach_count",
                params![
                    row.user_id,
                    row.kind.as_str(),
                    row.detected_at.unix_micros(),
                    row.breach_count.map(|n| n.min(i64::MAX as u64) as i64)
                ],
            )
            .map_err(CloudError::storage)?;
        Ok(())
    }

    fn delete_risk(&mut self, user_id: i64, kind: RiskKind) -> CloudResult<bool> {
        let n = self
            .conn
            .execute(
                "DELETE FROM risks WHERE user_id = ?1 AND kind = ?2",
                params![user_id, kind.as_str()],
            )
            .map_err(CloudError::storage)?;
        Ok(n == 1)
    }

    fn stats(&mut self) -> CloudResult<StoreStats> {
        let count = |sql: &str| -> CloudResult<u64> {
            Ok(self
                .conn
                .query_row(sql, [], |r| r.get::<_, i64>(0))
                .map_err(CloudError::storage)? as u64)
        };
        Ok(StoreStats {
            users: count("SELECT count(*) FROM users")?,
            synced_users: count("SELECT count(*) FROM users WHERE origin = 'synced'")?,
            cloud_users: count("SELECT count(*) FROM users WHERE origin = 'cloud'")?,
            credentials: count("SELECT count(*) FROM credentials")?,
            sessions: count("SELECT count(*) FROM sessions")?,
            audit_entries: count("SELECT count(*) FROM audit")?,
        })
    }

    fn savepoint(&mut self, step: Savepoint) -> CloudResult<()> {
        self.conn
            .execute_batch(step.sql())
            .map_err(CloudError::storage)
    }

    fn commit(mut self: Box<Self>) -> CloudResult<()> {
        self.conn
            .execute_batch("COMMIT")
            .map_err(CloudError::storage)?;
        self.done = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite's plan for one user's risk marks: a search by key in both tables, never a
    /// scan of users (which made a full sync quadratic).
    #[test]
    fn one_users_risks_are_read_by_key_not_by_a_scan_of_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        let plan = |sql: &str| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt
                .query_map(params![1i64, Option::<String>::None], |r| {
                    r.get::<_, String>(3)
                })
                .unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
        };
        let one = plan(&risks_sql(true));
        assert!(!one.contains("SCAN users"), "{one}");
        assert!(one.contains("SEARCH users"), "{one}");
        assert!(one.contains("SEARCH risks"), "{one}");
        // The listing (an administrator's, not per credential) still runs.
        let all = plan(&risks_sql(false));
        assert!(!all.is_empty());
    }
}
