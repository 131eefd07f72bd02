//! The engine's durable state, one SQLite file (`state.db`, 0600) in the state directory:
//! the replication cursor, the per-user retry queue, and per-user diagnostics ("why didn't
//! this user's password sync?") with a history kept for `HISTORY_DAYS`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use phsync_tenant::Timestamp;

/// Attempts history is kept this long (Microsoft's event log keeps far less).
pub const HISTORY_DAYS: i64 = 90;
/// After this many failed attempts a user goes to the no-retry list (event 620).
pub const MAX_ATTEMPTS: u32 = 8;
const BACKOFF_BASE_SECONDS: i64 = 60;
const BACKOFF_CAP_SECONDS: i64 = 3600;

/// Per-object results, named as Microsoft's PHS troubleshooting names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SyncStatus {
    Success,
    FilteredByTarget,
    NoTargetConnection,
    SourceConnectorNotPresent,
    TargetNotExportedToDirectory,
    Error,
    MissingAttribute,
    RetryRequestedByTarget,
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Success => "Success",
            SyncStatus::FilteredByTarget => "FilteredByTarget",
            SyncStatus::NoTargetConnection => "NoTargetConnection",
            SyncStatus::SourceConnectorNotPresent => "SourceConnectorNotPresent",
            SyncStatus::TargetNotExportedToDirectory => "TargetNotExportedToDirectory",
            SyncStatus::Error => "Error",
            SyncStatus::MissingAttribute => "MissingAttribute",
            SyncStatus::RetryRequestedByTarget => "RetryRequestedByTarget",
        }
    }

    fn parse(s: &str) -> SyncStatus {
        [
            SyncStatus::Success,
            SyncStatus::FilteredByTarget,
            SyncStatus::NoTargetConnection,
            SyncStatus::SourceConnectorNotPresent,
            SyncStatus::TargetNotExportedToDirectory,
            SyncStatus::MissingAttribute,
            SyncStatus::RetryRequestedByTarget,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
        .unwrap_or(SyncStatus::Error)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RetryState {
    None,
    Queued {
        attempts: u32,
        next_attempt_at: Timestamp,
    },
    /// Gave up after `attempts`; a later on-prem change or `--full` tries again.
    Abandoned {
        attempts: u32,
    },
}

/// What the engine knows about one user's last sync attempt.
#[derive(Debug, Clone, Serialize)]
pub struct UserDiagnostics {
    /// objectGUID, canonical string form.
    pub object_guid: String,
    pub sam_account_name: String,
    pub user_principal_name: String,
    pub source_anchor: String,
    pub last_attempt_at: Timestamp,
    pub status: SyncStatus,
    pub reason: String,
    pub onprem_changed_at: Option<Timestamp>,
    /// When the tenant last accepted this user's password.
    pub applied_at: Option<Timestamp>,
    pub retry: RetryState,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub at: Timestamp,
    pub status: SyncStatus,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
#[error("sync state {path}: {message}")]
pub struct StateError {
    pub path: String,
    pub message: String,
}

pub struct StateStore {
    conn: Connection,
    path: PathBuf,
}

const USER_COLUMNS: &str =
    "object_guid, sam, upn, source_anchor, last_attempt_at, status, reason, \
    onprem_changed_at, applied_at, attempts, next_attempt_at, abandoned";
/// ?1: the name lower-cased (GUID or UPN), ?2: the sAMAccountName part lower-cased, ?3: the
/// name as given (source anchors are case-sensitive base64). Each alternative is an exact
/// match on an indexed column: the keys are normalized once, when stored.
const USER_BY_NAME: &str =
    "SELECT object_guid, sam, upn, source_anchor, last_attempt_at, status, reason, \
    onprem_changed_at, applied_at, attempts, next_attempt_at, abandoned FROM users \
    WHERE object_guid = ?1 OR sam_key = ?2 OR upn_key = ?1 OR source_anchor = ?3 \
    ORDER BY last_attempt_at DESC LIMIT 1";
const USER_BY_GUID: &str = "SELECT object_guid, sam, upn, source_anchor, last_attempt_at, status, reason, \
    onprem_changed_at, applied_at, attempts, next_attempt_at, abandoned FROM users WHERE object_guid = ?1";
const DUE_RETRIES: &str = "SELECT object_guid FROM users WHERE next_attempt_at IS NOT NULL \
    AND next_attempt_at <= ?1 ORDER BY next_attempt_at";
const QUEUED_RETRIES: &str =
    "SELECT object_guid FROM users WHERE next_attempt_at IS NOT NULL ORDER BY next_attempt_at";

/// The schema version this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

/// Version 0: the first schema. Its name indexes were on `lower(sam)` / `lower(upn)`.
const SCHEMA_V0: &str = "
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    object_guid       TEXT PRIMARY KEY,
    sam               TEXT NOT NULL,
    upn               TEXT NOT NULL,
    source_anchor     TEXT NOT NULL,
    last_attempt_at   INTEGER NOT NULL,
    status            TEXT NOT NULL,
    reason            TEXT NOT NULL,
    onprem_changed_at INTEGER,
    applied_at        INTEGER,
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   INTEGER,
    abandoned         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS users_anchor ON users (source_anchor);
CREATE TABLE IF NOT EXISTS history (
    object_guid TEXT NOT NULL,
    at          INTEGER NOT NULL,
    status      TEXT NOT NULL,
    reason      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_guid ON history (object_guid, at);
";

/// Version 1: names normalized once when stored (`sam_key`, `upn_key`, lower-case), so a
/// lookup is an exact match on an index; the retry queue indexed by due time; the GUIDs of
/// the in-scope users as of the last completed cycle (incremental cycles learn only the
/// changes from the directory, and need to know who was in scope).
const MIGRATE_V1: &str = "
ALTER TABLE users ADD COLUMN sam_key TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN upn_key TEXT NOT NULL DEFAULT '';
DROP INDEX IF EXISTS users_sam;
DROP INDEX IF EXISTS users_upn;
CREATE INDEX users_sam_key ON users (sam_key);
CREATE INDEX users_upn_key ON users (upn_key);
CREATE INDEX users_retry ON users (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE TABLE scope (object_guid TEXT PRIMARY KEY) WITHOUT ROWID;
";

/// The lookup key of a sAMAccountName or UPN (both case-insensitive in AD).
fn name_key(name: &str) -> String {
    name.to_lowercase()
}

fn backoff_seconds(attempts: u32) -> i64 {
    let exp = attempts.saturating_sub(1).min(20);
    (BACKOFF_BASE_SECONDS << exp).min(BACKOFF_CAP_SECONDS)
}

/// Bring the schema to [`SCHEMA_VERSION`], each step in one transaction (a crash leaves the
/// previous version, complete). A file from a newer phsync is refused rather than misread.
fn migrate(conn: &Connection) -> Result<(), String> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if version > SCHEMA_VERSION {
        return Err(format!(
            "schema version {version} is newer than this phsync's ({SCHEMA_VERSION})"
        ));
    }
    migrate_to_v1(conn, version).map_err(|e| e.to_string())
}

fn migrate_to_v1(conn: &Connection, version: i64) -> rusqlite::Result<()> {
    if version < 1 {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(SCHEMA_V0)?;
        tx.execute_batch(MIGRATE_V1)?;
        // Unicode lower-casing (SQLite's lower() is ASCII-only), once per stored user.
        let rows: Vec<(String, String, String)> = {
            let mut stmt = tx.prepare("SELECT object_guid, sam, upn FROM users")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        {
            let mut update =
                tx.prepare("UPDATE users SET sam_key = ?2, upn_key = ?3 WHERE object_guid = ?1")?;
            for (guid, sam, upn) in rows {
                update.execute(params![guid, name_key(&sam), name_key(&upn)])?;
            }
        }
        tx.execute_batch("PRAGMA user_version = 1")?;
        tx.commit()?;
    }
    Ok(())
}

impl StateStore {
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let path = dir.join("state.db");
        let err = |m: String| StateError {
            path: path.display().to_string(),
            message: m,
        };
        phsync_tenant::private_file::ensure_private_dir(dir)
            .map_err(|e| err(format!("cannot create the state directory: {e}")))?;
        phsync_tenant::private_file::ensure_private_file(&path)
            .map_err(|e| err(format!("cannot create: {e}")))?;
        let conn = Connection::open(&path).map_err(|e| err(e.to_string()))?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(|e| err(e.to_string()))?;
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .map_err(|e| err(format!("not a state file ({e})")))?;
        // WAL with NORMAL sync: a commit is durable against a process crash (what the
        // cursor rules need) without an fsync per user.
        conn.execute_batch("PRAGMA synchronous=NORMAL;")
            .map_err(|e| err(e.to_string()))?;
        migrate(&conn).map_err(|e| err(format!("cannot bring the schema up to date: {e}")))?;
        Ok(StateStore { conn, path })
    }

    fn err(&self, e: impl std::fmt::Display) -> StateError {
        StateError {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    pub fn get(&self, key: &str) -> Result<Option<String>, StateError> {
        self.conn
            .query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn put(&self, key: &str, value: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub fn delete(&self, key: &str) -> Result<(), StateError> {
        self.conn
            .execute("DELETE FROM kv WHERE key = ?1", [key])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Run `f` in a transaction of its own, or in the open batch (see [`StateStore::batch`]).
    fn write<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        if !self.conn.is_autocommit() {
            return f(&self.conn).map_err(|e| self.err(e));
        }
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let value = f(&tx).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(value)
    }

    /// Group the writes until the returned guard ends into one transaction: one commit per
    /// credential batch instead of one per user. What was written before an error is
    /// committed too when the guard drops (those outcomes happened).
    pub fn batch(&self) -> Result<Batch<'_>, StateError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))?;
        Ok(Batch {
            store: self,
            open: true,
        })
    }

    /// Record an attempt's outcome. A success clears the retry state; any other status
    /// leaves it to `queue_retry`.
    pub fn record(&self, d: &UserDiagnostics) -> Result<(), StateError> {
        self.write(|c| {
            c.prepare_cached(
                "INSERT INTO users (object_guid, sam, upn, source_anchor, last_attempt_at, status, reason, onprem_changed_at, applied_at, sam_key, upn_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT(object_guid) DO UPDATE SET sam = excluded.sam, upn = excluded.upn,
                   source_anchor = excluded.source_anchor, last_attempt_at = excluded.last_attempt_at,
                   status = excluded.status, reason = excluded.reason,
                   onprem_changed_at = COALESCE(excluded.onprem_changed_at, users.onprem_changed_at),
                   applied_at = COALESCE(excluded.applied_at, users.applied_at),
                   sam_key = excluded.sam_key, upn_key = excluded.upn_key",
            )?
            .execute(params![
                d.object_guid,
                d.sam_account_name,
                d.user_principal_name,
                d.source_anchor,
                d.last_attempt_at.unix_micros(),
                d.status.as_str(),
                d.reason,
                d.onprem_changed_at.map(Timestamp::unix_micros),
                d.applied_at.map(Timestamp::unix_micros),
                name_key(&d.sam_account_name),
                name_key(&d.user_principal_name),
            ])?;
            if d.status == SyncStatus::Success || d.status == SyncStatus::FilteredByTarget {
                c.prepare_cached(
                    "UPDATE users SET attempts = 0, next_attempt_at = NULL, abandoned = 0 WHERE object_guid = ?1",
                )?
                .execute([&d.object_guid])?;
            }
            c.prepare_cached(
                "INSERT INTO history (object_guid, at, status, reason) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                d.object_guid,
                d.last_attempt_at.unix_micros(),
                d.status.as_str(),
                d.reason
            ])?;
            Ok(())
        })
    }

    /// Count a failed attempt and schedule the next one with exponential backoff, or move
    /// the user to the no-retry list after `MAX_ATTEMPTS`. Returns the new retry state.
    pub fn queue_retry(&self, object_guid: &str, now: Timestamp) -> Result<RetryState, StateError> {
        let attempts: u32 = self
            .conn
            .query_row(
                "SELECT attempts FROM users WHERE object_guid = ?1",
                [object_guid],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| self.err(format!("no diagnostics recorded for {object_guid}")))?;
        let attempts = attempts + 1;
        let state = if attempts >= MAX_ATTEMPTS {
            RetryState::Abandoned { attempts }
        } else {
            RetryState::Queued {
                attempts,
                next_attempt_at: now.plus_seconds(backoff_seconds(attempts)),
            }
        };
        let (next, abandoned) = match &state {
            RetryState::Queued {
                next_attempt_at, ..
            } => (Some(next_attempt_at.unix_micros()), false),
            _ => (None, true),
        };
        self.write(|c| {
            c.execute(
                "UPDATE users SET attempts = ?2, next_attempt_at = ?3, abandoned = ?4 WHERE object_guid = ?1",
                params![object_guid, attempts, next, abandoned],
            )
        })?;
        Ok(state)
    }

    /// The objectGUIDs in scope as of the last completed cycle.
    pub fn scope_contains(&self, object_guid: &str) -> Result<bool, StateError> {
        self.conn
            .prepare_cached("SELECT 1 FROM scope WHERE object_guid = ?1")
            .and_then(|mut s| s.exists([object_guid]))
            .map_err(|e| self.err(e))
    }

    /// How many users were in scope as of the last completed cycle.
    pub fn scope_len(&self) -> Result<u64, StateError> {
        self.conn
            .query_row("SELECT count(*) FROM scope", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Replace the stored scope (after a full read of it).
    pub fn replace_scope<'a>(
        &self,
        guids: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), StateError> {
        self.write(|c| {
            c.execute("DELETE FROM scope", [])?;
            let mut insert =
                c.prepare_cached("INSERT OR IGNORE INTO scope (object_guid) VALUES (?1)")?;
            for g in guids {
                insert.execute([g])?;
            }
            Ok(())
        })
    }

    /// Apply a change to the stored scope: `entered` are in scope now, `left` no longer.
    pub fn update_scope<'a>(
        &self,
        entered: impl IntoIterator<Item = &'a str>,
        left: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), StateError> {
        self.write(|c| {
            let mut insert =
                c.prepare_cached("INSERT OR IGNORE INTO scope (object_guid) VALUES (?1)")?;
            for g in entered {
                insert.execute([g])?;
            }
            let mut delete = c.prepare_cached("DELETE FROM scope WHERE object_guid = ?1")?;
            for g in left {
                delete.execute([g])?;
            }
            Ok(())
        })
    }

    /// Users whose retry is due at `now`, oldest first.
    pub fn due_retries(&self, now: Timestamp) -> Result<Vec<String>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached(DUE_RETRIES)
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([now.unix_micros()], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Users queued for a retry (due or not): their changes are durably owed.
    pub fn queued_retries(&self) -> Result<Vec<String>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached(QUEUED_RETRIES)
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn diagnostics_from_row(r: &Row<'_>) -> rusqlite::Result<UserDiagnostics> {
        let attempts: u32 = r.get(9)?;
        let next: Option<i64> = r.get(10)?;
        let abandoned: bool = r.get(11)?;
        let retry = match (next, abandoned) {
            (_, true) => RetryState::Abandoned { attempts },
            (Some(n), false) => RetryState::Queued {
                attempts,
                next_attempt_at: Timestamp::from_unix_micros(n),
            },
            (None, false) => RetryState::None,
        };
        Ok(UserDiagnostics {
            object_guid: r.get(0)?,
            sam_account_name: r.get(1)?,
            user_principal_name: r.get(2)?,
            source_anchor: r.get(3)?,
            last_attempt_at: Timestamp::from_unix_micros(r.get(4)?),
            status: SyncStatus::parse(&r.get::<_, String>(5)?),
            reason: r.get(6)?,
            onprem_changed_at: r.get::<_, Option<i64>>(7)?.map(Timestamp::from_unix_micros),
            applied_at: r.get::<_, Option<i64>>(8)?.map(Timestamp::from_unix_micros),
            retry,
        })
    }

    /// One user by objectGUID, sAMAccountName (`DOMAIN\sam` too), UPN or source anchor.
    /// Every alternative is an index lookup (GUIDs are stored in their lower-case canonical
    /// form), so the cost does not grow with the number of users.
    pub fn user(&self, name: &str) -> Result<Option<UserDiagnostics>, StateError> {
        let sam = name.rsplit('\\').next().unwrap_or(name);
        self.conn
            .query_row(
                USER_BY_NAME,
                params![name_key(name), name_key(sam), name],
                Self::diagnostics_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// One user by objectGUID: the primary key, as the engine looks users up after each
    /// delivery.
    pub fn user_by_guid(&self, guid: &str) -> Result<Option<UserDiagnostics>, StateError> {
        self.conn
            .prepare_cached(USER_BY_GUID)
            .and_then(|mut s| {
                s.query_row(
                    params![guid.to_ascii_lowercase()],
                    Self::diagnostics_from_row,
                )
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn users(&self) -> Result<Vec<UserDiagnostics>, StateError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY sam_key"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], Self::diagnostics_from_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    pub fn history(
        &self,
        object_guid: &str,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT at, status, reason FROM history WHERE object_guid = ?1 ORDER BY at DESC LIMIT ?2")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![object_guid, limit as i64], |r| {
                Ok(HistoryEntry {
                    at: Timestamp::from_unix_micros(r.get(0)?),
                    status: SyncStatus::parse(&r.get::<_, String>(1)?),
                    reason: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Drop attempt history older than `HISTORY_DAYS`; the latest status per user stays.
    pub fn prune(&self, now: Timestamp) -> Result<usize, StateError> {
        let cutoff = now.plus_seconds(-HISTORY_DAYS * 86_400).unix_micros();
        self.conn
            .execute("DELETE FROM history WHERE at < ?1", [cutoff])
            .map_err(|e| self.err(e))
    }
}

/// A state batch in progress: one transaction, committed by [`Batch::commit`] or on drop.
pub struct Batch<'a> {
    store: &'a StateStore,
    open: bool,
}

impl Batch<'_> {
    pub fn commit(mut self) -> Result<(), StateError> {
        self.open = false;
        self.finish()
    }

    fn finish(&self) -> Result<(), StateError> {
        let c = &self.store.conn;
        if let Err(e) = c.execute_batch("COMMIT") {
            let _ = c.execute_batch("ROLLBACK");
            return Err(self.store.err(e));
        }
        Ok(())
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if self.open {
            if let Err(e) = self.finish() {
                tracing::warn!("the sync state batch could not be committed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query plan of `sql`, one detail line per step.
    fn plan(store: &StateStore, sql: &str) -> Vec<String> {
        let mut stmt = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let n = stmt.parameter_count();
        stmt.query_map(rusqlite::params_from_iter(vec!["X"; n]), |r| {
            r.get::<_, String>(3)
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    #[test]
    fn user_lookups_use_indexes_not_a_scan_of_every_user() {
        // A scan per lookup made every delivered user cost O(users): quadratic full syncs.
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        for sql in [USER_BY_NAME, USER_BY_GUID, DUE_RETRIES, QUEUED_RETRIES] {
            let steps = plan(&store, sql);
            assert!(
                steps.iter().all(|s| !s.starts_with("SCAN users")),
                "{sql}\n{steps:?}"
            );
            // The retry queue comes in due order straight from its index (a sort of the
            // few rows a name matches is fine).
            if sql != USER_BY_NAME {
                assert!(
                    steps.iter().all(|s| !s.contains("TEMP B-TREE")),
                    "{sql}\n{steps:?}"
                );
            }
            assert!(!sql.contains("lower("), "no per-row normalization: {sql}");
        }
        let d = diag(
            "0a0b0c0d-0000-0000-0000-000000000001",
            SyncStatus::Success,
            Timestamp::from_unix_micros(1),
        );
        store.record(&d).unwrap();
        let upper = d.object_guid.to_ascii_uppercase();
        assert!(store.user_by_guid(&upper).unwrap().is_some());
        assert!(store.user(&upper).unwrap().is_some());
        assert!(store.user(&d.source_anchor).unwrap().is_some());
    }

    #[test]
    fn a_first_version_state_file_migrates_with_unicode_name_keys() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(dir.path().join("state.db")).unwrap();
            c.execute_batch(SCHEMA_V0).unwrap();
            c.execute_batch(
                "CREATE INDEX users_sam ON users (lower(sam));
                 INSERT INTO users (object_guid, sam, upn, source_anchor, last_attempt_at, status, reason)
                 VALUES ('g1', 'Ångström', 'Ångström@PHS.test', 'QUFB', 5, 'Success', 'synced');",
            )
            .unwrap();
        }
        let store = StateStore::open(dir.path()).unwrap();
        for name in [
            "ÅNGSTRÖM",
            "PHS\\ångström",
            "ångström@phs.TEST",
            "QUFB",
            "G1",
        ] {
            let found = store.user(name).unwrap();
            assert_eq!(
                found.map(|d| d.object_guid),
                Some("g1".to_string()),
                "{name}"
            );
        }
        assert!(
            store.user("qufb").unwrap().is_none(),
            "anchors are case-sensitive"
        );
        drop(store);
        // Opening again is a no-op; a newer schema is refused, not misread.
        StateStore::open(dir.path()).unwrap();
        Connection::open(dir.path().join("state.db"))
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        let e = StateStore::open(dir.path()).err().unwrap();
        assert!(e.message.contains("newer"), "{e}");
    }

    #[test]
    fn a_batch_is_one_transaction_committed_even_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let other = StateStore::open(dir.path()).unwrap();
        let t = Timestamp::from_unix_micros(1);
        let batch = store.batch().unwrap();
        store.record(&diag("g1", SyncStatus::Success, t)).unwrap();
        store.record(&diag("g2", SyncStatus::Error, t)).unwrap();
        store.queue_retry("g2", t).unwrap();
        assert!(
            other.user_by_guid("g1").unwrap().is_none(),
            "not visible before the commit"
        );
        batch.commit().unwrap();
        assert!(other.user_by_guid("g1").unwrap().is_some());
        assert_eq!(other.queued_retries().unwrap(), vec!["g2".to_string()]);
        {
            let _batch = store.batch().unwrap();
            store.record(&diag("g3", SyncStatus::Success, t)).unwrap();
            // An error return drops the guard: what was recorded stays recorded.
        }
        assert!(other.user_by_guid("g3").unwrap().is_some());
        assert!(store.conn.is_autocommit());
    }

    #[test]
    fn the_stored_scope_follows_replacements_and_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store.replace_scope(["a", "b", "c"]).unwrap();
        assert_eq!(store.scope_len().unwrap(), 3);
        store.update_scope(["d"], ["a", "x"]).unwrap();
        assert_eq!(store.scope_len().unwrap(), 3);
        assert!(store.scope_contains("d").unwrap() && !store.scope_contains("a").unwrap());
        store.replace_scope(["e"]).unwrap();
        assert_eq!(store.scope_len().unwrap(), 1);
    }

    fn diag(guid: &str, status: SyncStatus, at: Timestamp) -> UserDiagnostics {
        UserDiagnostics {
            object_guid: guid.into(),
            sam_account_name: "alice".into(),
            user_principal_name: "alice@phs.test".into(),
            source_anchor: "anchor".into(),
            last_attempt_at: at,
            status,
            reason: "test".into(),
            onprem_changed_at: Some(at),
            applied_at: None,
            retry: RetryState::None,
        }
    }

    #[test]
    fn retry_backoff_then_abandon_then_success_clears() {
        let dir = std::env::temp_dir().join(format!("phsync-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = StateStore::open(&dir).unwrap();
        let t0 = Timestamp::from_unix_micros(1_000_000_000_000_000);
        s.record(&diag("g1", SyncStatus::RetryRequestedByTarget, t0))
            .unwrap();
        let mut next = Vec::new();
        for i in 1..MAX_ATTEMPTS {
            match s.queue_retry("g1", t0).unwrap() {
                RetryState::Queued {
                    attempts,
                    next_attempt_at,
                } => {
                    assert_eq!(attempts, i);
                    next.push(next_attempt_at.unix_micros() - t0.unix_micros());
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(
            next.windows(2).all(|w| w[0] <= w[1]),
            "backoff grows: {next:?}"
        );
        assert_eq!(next[0], 60_000_000);
        assert_eq!(*next.last().unwrap(), 3_600_000_000);
        assert_eq!(s.due_retries(t0).unwrap(), Vec::<String>::new());
        assert_eq!(
            s.due_retries(t0.plus_seconds(3600)).unwrap(),
            vec!["g1".to_string()]
        );
        assert_eq!(
            s.queue_retry("g1", t0).unwrap(),
            RetryState::Abandoned {
                attempts: MAX_ATTEMPTS
            }
        );
        assert!(s.due_retries(t0.plus_seconds(99_999)).unwrap().is_empty());
        assert_eq!(
            s.user("PHS\\Alice").unwrap().unwrap().retry,
            RetryState::Abandoned {
                attempts: MAX_ATTEMPTS
            }
        );

        s.record(&diag("g1", SyncStatus::Success, t0.plus_seconds(10)))
            .unwrap();
        let d = s.user("alice@PHS.test").unwrap().unwrap();
        assert_eq!(d.status, SyncStatus::Success);
        assert_eq!(d.retry, RetryState::None);
        assert_eq!(s.history("g1", 10).unwrap().len(), 2);
        assert_eq!(s.prune(t0.plus_seconds(91 * 86_400)).unwrap(), 2);
        assert!(
            s.user("g1").unwrap().is_some(),
            "the latest status outlives the history"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
