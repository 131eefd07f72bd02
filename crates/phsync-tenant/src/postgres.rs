//! The tenant in PostgreSQL, for a service with many agents, replicas and millions of users.
//!
//! Transactions run concurrently (READ COMMITTED); the rules stay correct because every
//! read-then-write of a user starts with [`StoreTx::user`], which locks: an advisory lock on
//! the anchor or UPN (so two creators of one new user queue) and `FOR UPDATE` on the row.
//! Stale rejection is additionally a single conditional `INSERT ... ON CONFLICT ... WHERE`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::{Client, NoTls, Row};
use r2d2_postgres::PostgresConnectionManager;
use zeroize::Zeroizing;

use super::limits::shown;
use super::store::{
    AuditRow, CredentialRow, LockoutRow, NewUser, RiskRow, Savepoint, SessionRow, StoreStats,
    StoreTx, TenantStore, TokenRole, TokenRow, UserKey, UserRow,
};
use super::{
    upn_key, CloudError, CloudResult, Origin, PasswordSource, RiskKind, TenantSettings, Timestamp,
};

/// Migrations in order, applied under an advisory lock so replicas starting together do not
/// race. Never edit one that has shipped: add the next. The second: ownership of anchors
/// and domains by sync sources (issue 15); existing synced users' anchors are claimed.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    upn           TEXT NOT NULL,
    upn_key       TEXT NOT NULL UNIQUE,
    source_anchor TEXT UNIQUE,
    display_name  TEXT,
    enabled       BOOLEAN NOT NULL,
    origin        TEXT NOT NULL CHECK (origin IN ('synced', 'cloud')),
    source        TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX users_source ON users(source);
CREATE TABLE credentials (
    user_id      BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    source       TEXT NOT NULL CHECK (source IN ('synced', 'cloud')),
    secret       TEXT NOT NULL,
    changed_at   BIGINT NOT NULL,
    applied_at   BIGINT NOT NULL,
    force_change BOOLEAN NOT NULL
);
CREATE TABLE lockouts (
    upn_key      TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start BIGINT NOT NULL,
    locked_until BIGINT,
    salt         BYTEA NOT NULL,
    recent       BYTEA NOT NULL
);
CREATE TABLE sessions (
    token_hash BYTEA PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE TABLE audit (
    id            BIGSERIAL PRIMARY KEY,
    at            BIGINT NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    upn           TEXT,
    source_anchor TEXT,
    outcome       TEXT NOT NULL,
    detail        TEXT
);
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('agent', 'admin')),
    source      TEXT,
    secret_hash BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
",
    "
CREATE TABLE anchor_claims (anchor TEXT PRIMARY KEY, source TEXT NOT NULL);
INSERT INTO anchor_claims (anchor, source)
    SELECT source_anchor, source FROM users
    WHERE source IS NOT NULL AND source_anchor IS NOT NULL
    ON CONFLICT DO NOTHING;
CREATE TABLE domain_claims (domain TEXT PRIMARY KEY, source TEXT NOT NULL);
CREATE INDEX users_domain ON users ((substr(upn_key, strpos(upn_key, '@') + 1)));
",
    // Risk marks against users' current passwords (issue 18): one row per user and kind,
    // with no hash, gone with the user.
    "
CREATE TABLE risks (
    user_id      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('leaked_credentials')),
    detected_at  BIGINT NOT NULL,
    breach_count BIGINT,
    PRIMARY KEY (user_id, kind)
);
",
];

/// Key of the advisory lock that serializes migrations.
const MIGRATION_LOCK: i64 = 0x7068_7379_6e63; // "phsync"

const MAX_CONNECTIONS: u32 = 32;
/// How long a transaction waits for a connection when all of them are busy.
const POOL_WAIT: Duration = Duration::from_secs(30);
/// How often a waiting transaction looks whether a connection attempt failed meanwhile.
const POOL_POLL: Duration = Duration::from_millis(50);

/// A PostgreSQL tenant store over an r2d2 connection pool (at most [`MAX_CONNECTIONS`],
/// opened on demand, kept until they break).
pub struct PostgresStore {
    /// `None` only while dropping (see `Drop`).
    pool: Option<r2d2::Pool<Manager>>,
    /// The last failed connection attempt, for failing fast while the server is down.
    connect_errors: Arc<ConnectErrors>,
    /// The URL without its password, for messages.
    display: String,
}

/// A pooled client and whether a failed `ROLLBACK` left it unusable.
struct PooledClient {
    client: Client,
    broken: bool,
}

/// r2d2_postgres's manager (no TLS, as the store refuses `sslmode=require`), plus
/// discarding a client whose transaction could not be rolled back.
#[derive(Debug)]
struct Manager(PostgresConnectionManager<NoTls>);

impl r2d2::ManageConnection for Manager {
    type Connection = PooledClient;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PooledClient, postgres::Error> {
        self.0.connect().map(|client| PooledClient {
            client,
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut PooledClient) -> Result<(), postgres::Error> {
        self.0.is_valid(&mut conn.client)
    }

    fn has_broken(&self, conn: &mut PooledClient) -> bool {
        conn.broken || conn.client.is_closed()
    }
}

/// r2d2 connects on its own threads and retries; this keeps the last failure so a caller
/// waiting for a connection hears about it at once, as it would connecting itself.
#[derive(Debug, Default)]
struct ConnectErrors(Mutex<Option<(Instant, String)>>);

impl ConnectErrors {
    fn since(&self, start: Instant) -> Option<String> {
        let last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref()
            .filter(|(at, _)| *at >= start)
            .map(|(_, m)| m.clone())
    }
}

#[derive(Debug)]
struct ConnectErrorHandler(Arc<ConnectErrors>);

impl r2d2::HandleError<postgres::Error> for ConnectErrorHandler {
    fn handle_error(&self, e: postgres::Error) {
        let message = describe(&e);
        tracing::debug!(error = %message, "PostgreSQL connection attempt failed");
        *self.0 .0.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), message));
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

fn pg_error(context: &str, e: postgres::Error) -> CloudError {
    // The driver's messages carry no password; the server's carry no row data we store.
    CloudError::Storage(format!("PostgreSQL {context}: {}", describe(&e)))
}

fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        }
    }
}

impl PostgresStore {
    /// Connect to `url` (`postgres://user:password@host:port/database`) and migrate.
    pub fn open(url: &str) -> CloudResult<Self> {
        let display = redact_url(url);
        let mut config: postgres::Config = url.parse().map_err(|e| {
            CloudError::InvalidArgument(format!("invalid PostgreSQL URL {display}: {e}"))
        })?;
        if config.get_ssl_mode() == postgres::config::SslMode::Require {
            return Err(CloudError::InvalidArgument(format!(
                "{display}: sslmode=require, but phsync talks to PostgreSQL without TLS; connect over loopback or a Unix socket (host=/run/postgresql), or through a TLS-terminating proxy"
            )));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("phsync");
        let connect_errors = Arc::new(ConnectErrors::default());
        let pool = r2d2::Pool::builder()
            .max_size(MAX_CONNECTIONS)
            .min_idle(Some(0))
            .idle_timeout(None)
            .max_lifetime(None)
            .test_on_check_out(false)
            .connection_timeout(POOL_WAIT)
            .error_handler(Box::new(ConnectErrorHandler(connect_errors.clone())))
            .build_unchecked(Manager(PostgresConnectionManager::new(config, NoTls)));
        let store = PostgresStore {
            pool: Some(pool),
            connect_errors,
            display,
        };
        let mut conn = store.acquire()?;
        store.migrate(&mut conn.client)?;
        drop(conn);
        Ok(store)
    }

    fn pool(&self) -> &r2d2::Pool<Manager> {
        self.pool
            .as_ref()
            .expect("the pool lives until the store is dropped")
    }

    fn migrate(&self, client: &mut Client) -> CloudResult<()> {
        let mut tx = client.transaction().map_err(|e| pg_error("migration", e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(|e| pg_error("migration lock", e))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS phsync_migrations (
                version    INTEGER PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .map_err(|e| pg_error("migration", e))?;
        let applied: i32 = tx
            .query_one(
                "SELECT COALESCE(max(version), 0) FROM phsync_migrations",
                &[],
            )
            .map_err(|e| pg_error("migration", e))?
            .get(0);
        let known = MIGRATIONS.len() as i32;
        if applied > known {
            return Err(CloudError::Storage(format!(
                "the PostgreSQL tenant at {} was written by a newer phsync (schema {applied}, this one knows {known})",
                self.display
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
            let version = i as i32 + 1;
            tx.batch_execute(sql)
                .map_err(|e| pg_error(&format!("migration {version}"), e))?;
            tx.execute(
                "INSERT INTO phsync_migrations (version) VALUES ($1)",
                &[&version],
            )
            .map_err(|e| pg_error("migration", e))?;
        }
        tx.commit().map_err(|e| pg_error("migration", e))
    }

    /// A connection: an idle one, a new one, or the first one freed within [`POOL_WAIT`].
    /// A failed connection attempt ends the wait at once.
    fn acquire(&self) -> CloudResult<r2d2::PooledConnection<Manager>> {
        let start = Instant::now();
        loop {
            let left = POOL_WAIT.saturating_sub(start.elapsed());
            match self.pool().get_timeout(left.min(POOL_POLL)) {
                // Closed while idle: dropping it makes the pool discard it.
                Ok(conn) if conn.client.is_closed() => continue,
                Ok(conn) => return Ok(conn),
                Err(_) => {}
            }
            if let Some(message) = self.connect_errors.since(start) {
                return Err(CloudError::Storage(format!(
                    "cannot connect to PostgreSQL at {}: {message}",
                    self.display
                )));
            }
            if start.elapsed() >= POOL_WAIT {
                return Err(CloudError::Storage(format!(
                    "all {MAX_CONNECTIONS} PostgreSQL connections stayed busy for {}s",
                    POOL_WAIT.as_secs()
                )));
            }
        }
    }
}

impl Drop for PostgresStore {
    /// The driver's clients block on their own runtime when closed, which panics on a
    /// thread that drives async tasks (a service shutting down): close them on a plain one.
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let _ = std::thread::spawn(move || drop(pool)).join();
        }
    }
}

impl TenantStore for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgresql"
    }

    fn write(&self) -> CloudResult<Box<dyn StoreTx + '_>> {
        let mut conn = self.acquire()?;
        if let Err(e) = conn.client.batch_execute("BEGIN") {
            conn.broken = true;
            return Err(pg_error("BEGIN", e));
        }
        Ok(Box::new(PgTx { conn, done: false }))
    }
}

struct PgTx {
    conn: r2d2::PooledConnection<Manager>,
    done: bool,
}

impl Drop for PgTx {
    /// Back to the pool: committed, or rolled back; a client that cannot roll back is
    /// discarded.
    fn drop(&mut self) {
        if !self.done && self.conn.client.batch_execute("ROLLBACK").is_err() {
            self.conn.broken = true;
        }
    }
}

const USER_COLUMNS: &str =
    "id, upn, source_anchor, display_name, enabled, origin, created_at, updated_at, source";
const TOKEN_COLUMNS: &str = "id, name, role, source, secret_hash, created_at, revoked_at";

fn user_from_row(r: &Row) -> UserRow {
    UserRow {
        id: r.get(0),
        upn: r.get(1),
        source_anchor: r.get(2),
        display_name: r.get(3),
        enabled: r.get(4),
        origin: if r.get::<_, &str>(5) == "cloud" {
            Origin::Cloud
        } else {
            Origin::Synced
        },
        created_at: Timestamp::from_unix_micros(r.get(6)),
        updated_at: Timestamp::from_unix_micros(r.get(7)),
        source: r.get(8),
    }
}

fn token_from_row(r: &Row) -> TokenRow {
    let hash: Vec<u8> = r.get(4);
    TokenRow {
        id: r.get(0),
        name: r.get(1),
        role: TokenRole::parse(r.get(2)).unwrap_or(TokenRole::Agent),
        source: r.get(3),
        // A malformed stored hash matches nothing.
        secret_hash: hash.try_into().unwrap_or([0xff; 32]),
        created_at: Timestamp::from_unix_micros(r.get(5)),
        revoked_at: r.get::<_, Option<i64>>(6).map(Timestamp::from_unix_micros),
    }
}

fn source_str(s: PasswordSource) -> &'static str {
    match s {
        PasswordSource::Synced => "synced",
        PasswordSource::Cloud => "cloud",
    }
}

/// Unique-constraint failures become the conflict the caller can act on.
fn map_unique(e: postgres::Error, upn: &str, anchor: Option<&str>) -> CloudError {
    if let Some(db) = e.as_db_error() {
        if *db.code() == SqlState::UNIQUE_VIOLATION {
            match db.constraint() {
                Some(c) if c.contains("source_anchor") => {
                    return CloudError::AnchorConflict(shown(anchor.unwrap_or_default()))
                }
                Some(c) if c.contains("upn_key") => return CloudError::UpnConflict(shown(upn)),
                _ => {}
            }
        }
    }
    pg_error("write", e)
}

impl PgTx {
    fn client(&mut self) -> &mut Client {
        &mut self.conn.client
    }

    /// Serialize transactions on one key (advisory, released at commit or rollback).
    fn lock_key(&mut self, key: &str) -> CloudResult<()> {
        self.client()
            .execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                &[&key],
            )
            .map_err(|e| pg_error("lock", e))?;
        Ok(())
    }

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
        let written = self
            .client()
            .execute(
                &format!(
                    "INSERT INTO credentials (user_id, source, secret, changed_at, applied_at, force_change)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (user_id) DO UPDATE SET source = excluded.source, secret = excluded.secret,
                       changed_at = excluded.changed_at, applied_at = excluded.applied_at,
                       force_change = excluded.force_change{condition}"
                ),
                &[
                    &user_id,
                    &source_str(c.source),
                    &c.secret.as_str(),
                    &c.changed_at.unix_micros(),
                    &c.applied_at.unix_micros(),
                    &c.force_change,
                ],
            )
            .map_err(|e| pg_error("write credential", e))?;
        Ok(written == 1)
    }
}

impl StoreTx for PgTx {
    fn user(&mut self, key: UserKey<'_>) -> CloudResult<Option<UserRow>> {
        let row = match key {
            UserKey::Id(id) => self.client().query_opt(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 FOR UPDATE"),
                &[&id],
            ),
            UserKey::Upn(k) => {
                self.lock_key(&format!("upn:{k}"))?;
                self.client().query_opt(
                    &format!("SELECT {USER_COLUMNS} FROM users WHERE upn_key = $1 FOR UPDATE"),
                    &[&k],
                )
            }
            UserKey::Anchor(a) => {
                self.lock_key(&format!("anchor:{a}"))?;
                self.client().query_opt(
                    &format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE source_anchor = $1 FOR UPDATE"
                    ),
                    &[&a],
                )
            }
        }
        .map_err(|e| pg_error("read user", e))?;
        Ok(row.as_ref().map(user_from_row))
    }

    fn users(&mut self, source: Option<&str>) -> CloudResult<Vec<UserRow>> {
        let rows = self
            .client()
            .query(
                &format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE $1::TEXT IS NULL OR source = $1 ORDER BY upn_key"
                ),
                &[&source],
            )
            .map_err(|e| pg_error("read users", e))?;
        Ok(rows.iter().map(user_from_row).collect())
    }

    fn insert_user(&mut self, u: &NewUser<'_>) -> CloudResult<UserRow> {
        let row = self
            .client()
            .query_one(
                &format!(
                    "INSERT INTO users (upn, upn_key, source_anchor, display_name, enabled, origin, source, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING {USER_COLUMNS}"
                ),
                &[
                    &u.upn,
                    &upn_key(u.upn),
                    &u.source_anchor,
                    &u.display_name,
                    &u.enabled,
                    &u.origin.as_str(),
                    &u.source,
                    &u.now.unix_micros(),
                ],
            )
            .map_err(|e| map_unique(e, u.upn, u.source_anchor))?;
        Ok(user_from_row(&row))
    }

    fn update_user(&mut self, u: &UserRow) -> CloudResult<()> {
        self.client()
            .execute(
                "UPDATE users SET upn = $2, upn_key = $3, source_anchor = $4, display_name = $5,
                 enabled = $6, origin = $7, updated_at = $8, source = $9 WHERE id = $1",
                &[
                    &u.id,
                    &u.upn,
                    &upn_key(&u.upn),
                    &u.source_anchor,
                    &u.display_name,
                    &u.enabled,
                    &u.origin.as_str(),
                    &u.updated_at.unix_micros(),
                    &u.source,
                ],
            )
            .map_err(|e| map_unique(e, &u.upn, u.source_anchor.as_deref()))?;
        Ok(())
    }

    fn delete_user(&mut self, user_id: i64) -> CloudResult<()> {
        self.client()
            .execute("DELETE FROM users WHERE id = $1", &[&user_id])
            .map_err(|e| pg_error("delete user", e))?;
        Ok(())
    }

    fn credential(&mut self, user_id: i64) -> CloudResult<Option<CredentialRow>> {
        let row = self
            .client()
            .query_opt(
                "SELECT source, secret, changed_at, applied_at, force_change FROM credentials WHERE user_id = $1",
                &[&user_id],
            )
            .map_err(|e| pg_error("read credential", e))?;
        Ok(row.map(|r| CredentialRow {
            source: if r.get::<_, &str>(0) == "cloud" {
                PasswordSource::Cloud
            } else {
                PasswordSource::Synced
            },
            secret: Zeroizing::new(r.get(1)),
            changed_at: Timestamp::from_unix_micros(r.get(2)),
            applied_at: Timestamp::from_unix_micros(r.get(3)),
            force_change: r.get(4),
        }))
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
            .client()
            .query_one(
                "SELECT changed_at FROM credentials WHERE user_id = $1",
                &[&user_id],
            )
            .map_err(|e| pg_error("read credential", e))?
            .get(0);
        Ok(Some(Timestamp::from_unix_micros(current)))
    }

    fn lockout(&mut self, key: &str) -> CloudResult<Option<LockoutRow>> {
        self.lock_key(&format!("lockout:{key}"))?;
        let row = self
            .client()
            .query_opt(
                "SELECT failures, window_start, locked_until, salt, recent FROM lockouts WHERE upn_key = $1",
                &[&key],
            )
            .map_err(|e| pg_error("read lockout", e))?;
        Ok(row.map(|r| {
            let salt: Vec<u8> = r.get(3);
            let recent: Vec<u8> = r.get(4);
            LockoutRow {
                upn_key: key.to_string(),
                failures: r.get::<_, i32>(0) as u32,
                window_start: Timestamp::from_unix_micros(r.get(1)),
                locked_until: r.get::<_, Option<i64>>(2).map(Timestamp::from_unix_micros),
                salt: salt.try_into().unwrap_or([0; 10]),
                recent: recent
                    .chunks_exact(32)
                    .map(|c| c.try_into().expect("32-byte chunk"))
                    .collect(),
            }
        }))
    }

    fn put_lockout(&mut self, row: &LockoutRow) -> CloudResult<()> {
        let recent: Vec<u8> = row.recent.iter().flatten().copied().collect();
        self.client()
            .execute(
                "INSERT INTO lockouts (upn_key, failures, window_start, locked_until, salt, recent)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (upn_key) DO UPDATE SET failures = excluded.failures,
                   window_start = excluded.window_start, locked_until = excluded.locked_until,
                   salt = excluded.salt, recent = excluded.recent",
                &[
                    &row.upn_key,
                    &(row.failures.min(i32::MAX as u32) as i32),
                    &row.window_start.unix_micros(),
                    &row.locked_until.map(Timestamp::unix_micros),
                    &row.salt.as_slice(),
                    &recent,
                ],
            )
            .map_err(|e| pg_error("write lockout", e))?;
        Ok(())
    }

    fn delete_lockout(&mut self, key: &str) -> CloudResult<()> {
        self.client()
            .execute("DELETE FROM lockouts WHERE upn_key = $1", &[&key])
            .map_err(|e| pg_error("write lockout", e))?;
        Ok(())
    }

    fn insert_session(&mut self, s: &SessionRow) -> CloudResult<()> {
        self.client()
            .execute(
                "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                &[
                    &s.token_hash.as_slice(),
                    &s.user_id,
                    &s.created_at.unix_micros(),
                    &s.expires_at.unix_micros(),
                ],
            )
            .map_err(|e| pg_error("write session", e))?;
        Ok(())
    }

    fn anchor_claim(&mut self, anchor: &str) -> CloudResult<Option<String>> {
        let row = self
            .client()
            .query_opt(
                "SELECT source FROM anchor_claims WHERE anchor = $1",
                &[&anchor],
            )
            .map_err(|e| pg_error("read anchor claim", e))?;
        Ok(row.map(|r| r.get(0)))
    }

    fn claim_anchor(&mut self, anchor: &str, source: &str) -> CloudResult<()> {
        self.client()
            .execute(
                "INSERT INTO anchor_claims (anchor, source) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&anchor, &source],
            )
            .map_err(|e| pg_error("write anchor claim", e))?;
        Ok(())
    }

    fn domain_claim(&mut self, domain: &str) -> CloudResult<Option<String>> {
        let read = |tx: &mut Self| -> CloudResult<Option<String>> {
            let row = tx
                .client()
                .query_opt(
                    "SELECT source FROM domain_claims WHERE domain = $1",
                    &[&domain],
                )
                .map_err(|e| pg_error("read domain claim", e))?;
            Ok(row.map(|r| r.get(0)))
        };
        // Claims are never removed: a claim found needs no lock, so creating users in a
        // claimed domain does not queue on it. Only an unclaimed domain is locked (and
        // read again) so that two sources cannot both claim it.
        if let Some(owner) = read(self)? {
            return Ok(Some(owner));
        }
        self.lock_key(&format!("domain:{domain}"))?;
        read(self)
    }

    fn claim_domain(&mut self, domain: &str, source: &str) -> CloudResult<()> {
        self.client()
            .execute(
                "INSERT INTO domain_claims (domain, source) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&domain, &source],
            )
            .map_err(|e| pg_error("write domain claim", e))?;
        Ok(())
    }

    fn domain_has_others(&mut self, domain: &str, source: &str) -> CloudResult<bool> {
        // The expression is the one `users_domain` indexes.
        let row = self
            .client()
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM users
                 WHERE substr(upn_key, strpos(upn_key, '@') + 1) = $1
                   AND (source IS NULL OR source <> $2 OR origin <> 'synced'))",
                &[&domain, &source],
            )
            .map_err(|e| pg_error("read domain users", e))?;
        Ok(row.get(0))
    }

    fn delete_sessions(&mut self, user_id: i64, keep: Option<&[u8; 32]>) -> CloudResult<u64> {
        let keep = keep.map(|k| k.as_slice());
        self.client()
            .execute(
                "DELETE FROM sessions WHERE user_id = $1 AND ($2::bytea IS NULL OR token_hash <> $2)",
                &[&user_id, &keep],
            )
            .map_err(|e| pg_error("delete sessions", e))
    }

    fn session(&mut self, token_hash: &[u8; 32]) -> CloudResult<Option<SessionRow>> {
        let row = self
            .client()
            .query_opt(
                "SELECT user_id, created_at, expires_at FROM sessions WHERE token_hash = $1",
                &[&token_hash.as_slice()],
            )
            .map_err(|e| pg_error("read session", e))?;
        Ok(row.map(|r| SessionRow {
            token_hash: *token_hash,
            user_id: r.get(0),
            created_at: Timestamp::from_unix_micros(r.get(1)),
            expires_at: Timestamp::from_unix_micros(r.get(2)),
        }))
    }

    fn append_audit(&mut self, a: &AuditRow) -> CloudResult<()> {
        self.client()
            .execute(
                "INSERT INTO audit (at, actor, action, upn, source_anchor, outcome, detail)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &a.at.unix_micros(),
                    &a.actor,
                    &a.action,
                    &a.upn,
                    &a.source_anchor,
                    &a.outcome,
                    &a.detail,
                ],
            )
            .map_err(|e| pg_error("write audit", e))?;
        Ok(())
    }

    fn audit(&mut self, limit: usize) -> CloudResult<Vec<AuditRow>> {
        let rows = self
            .client()
            .query(
                "SELECT at, actor, action, upn, source_anchor, outcome, detail FROM audit
                 ORDER BY id DESC LIMIT $1",
                &[&(limit.min(i64::MAX as usize) as i64)],
            )
            .map_err(|e| pg_error("read audit", e))?;
        Ok(rows
            .iter()
            .map(|r| AuditRow {
                at: Timestamp::from_unix_micros(r.get(0)),
                actor: r.get(1),
                action: r.get(2),
                upn: r.get(3),
                source_anchor: r.get(4),
                outcome: r.get(5),
                detail: r.get(6),
            })
            .collect())
    }

    fn settings(&mut self) -> CloudResult<TenantSettings> {
        let row = self
            .client()
            .query_opt("SELECT value FROM meta WHERE key = 'settings'", &[])
            .map_err(|e| pg_error("read settings", e))?;
        match row {
            None => Ok(TenantSettings::default()),
            Some(r) => serde_json::from_str(r.get(0))
                .map_err(|e| CloudError::Storage(format!("stored settings are unreadable: {e}"))),
        }
    }

    fn put_settings(&mut self, settings: &TenantSettings) -> CloudResult<()> {
        let json = serde_json::to_string(settings).expect("settings serialize");
        self.client()
            .execute(
                "INSERT INTO meta (key, value) VALUES ('settings', $1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&json],
            )
            .map_err(|e| pg_error("write settings", e))?;
        Ok(())
    }

    fn insert_token(&mut self, t: &TokenRow) -> CloudResult<()> {
        self.client()
            .execute(
                "INSERT INTO tokens (id, name, role, source, secret_hash, created_at, revoked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &t.id,
                    &t.name,
                    &t.role.as_str(),
                    &t.source,
                    &t.secret_hash.as_slice(),
                    &t.created_at.unix_micros(),
                    &t.revoked_at.map(Timestamp::unix_micros),
                ],
            )
            .map_err(|e| pg_error("write token", e))?;
        Ok(())
    }

    fn token(&mut self, id: &str) -> CloudResult<Option<TokenRow>> {
        let row = self
            .client()
            .query_opt(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1"),
                &[&id],
            )
            .map_err(|e| pg_error("read token", e))?;
        Ok(row.as_ref().map(token_from_row))
    }

    fn tokens(&mut self) -> CloudResult<Vec<TokenRow>> {
        let rows = self
            .client()
            .query(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id"),
                &[],
            )
            .map_err(|e| pg_error("read tokens", e))?;
        Ok(rows.iter().map(token_from_row).collect())
    }

    fn revoke_token(&mut self, id: &str, at: Timestamp) -> CloudResult<bool> {
        let n = self
            .client()
            .execute(
                "UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &at.unix_micros()],
            )
            .map_err(|e| pg_error("write token", e))?;
        Ok(n == 1)
    }

    fn risks(
        &mut self,
        user_id: Option<i64>,
        source: Option<&str>,
    ) -> CloudResult<Vec<(UserRow, RiskRow)>> {
        let rows = self
            .client()
            .query(
                &format!(
                    // One user's marks by the key (read for every credential a sync
                    // applies): `$1 IS NULL OR id = $1` could not use it.
                    "SELECT {USER_COLUMNS}, kind, detected_at, breach_count
                     FROM risks JOIN users ON users.id = risks.user_id
                     WHERE {} AND ($2::TEXT IS NULL OR source = $2)
                     ORDER BY {}",
                    if user_id.is_some() {
                        "risks.user_id = $1"
                    } else {
                        "$1::BIGINT IS NULL"
                    },
                    if user_id.is_some() {
                        "kind"
                    } else {
                        "upn_key, kind"
                    }
                ),
                &[&user_id, &source],
            )
            .map_err(|e| pg_error("read risks", e))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let user = user_from_row(r);
            let kind: &str = r.get(9);
            let kind = RiskKind::parse(kind)
                .ok_or_else(|| CloudError::Storage(format!("unknown risk kind {}", shown(kind))))?;
            let risk = RiskRow {
                user_id: user.id,
                kind,
                detected_at: Timestamp::from_unix_micros(r.get(10)),
                breach_count: r.get::<_, Option<i64>>(11).map(|n| n as u64),
            };
            out.push((user, risk));
        }
        Ok(out)
    }

    fn put_risk(&mut self, row: &RiskRow) -> CloudResult<()> {
        self.client()
            .execute(
                "INSERT INTO risks (user_id, kind, detected_at, breach_count) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id, kind) DO UPDATE SET detected_at = excluded.detected_at,
                   breach_count = excluded.breach_count",
                &[
                    &row.user_id,
                    &row.kind.as_str(),
                    &row.detected_at.unix_micros(),
                    &row.breach_count.map(|n| n.min(i64::MAX as u64) as i64),
                ],
            )
            .map_err(|e| pg_error("write risk", e))?;
        Ok(())
    }

    fn delete_risk(&mut self, user_id: i64, kind: RiskKind) -> CloudResult<bool> {
        let n = self
            .client()
            .execute(
                "DELETE FROM risks WHERE user_id = $1 AND kind = $2",
                &[&user_id, &kind.as_str()],
            )
            .map_err(|e| pg_error("write risk", e))?;
        Ok(n == 1)
    }

    fn stats(&mut self) -> CloudResult<StoreStats> {
        let r = self
            .client()
            .query_one(
                "SELECT (SELECT count(*) FROM users),
                        (SELECT count(*) FROM users WHERE origin = 'synced'),
                        (SELECT count(*) FROM users WHERE origin = 'cloud'),
                        (SELECT count(*) FROM credentials),
                        (SELECT count(*) FROM sessions),
                        (SELECT count(*) FROM audit)",
                &[],
            )
            .map_err(|e| pg_error("read counts", e))?;
        let n = |i: usize| r.get::<_, i64>(i) as u64;
        Ok(StoreStats {
            users: n(0),
            synced_users: n(1),
            cloud_users: n(2),
            credentials: n(3),
            sessions: n(4),
            audit_entries: n(5),
        })
    }

    fn savepoint(&mut self, step: Savepoint) -> CloudResult<()> {
        self.client()
            .batch_execute(step.sql())
            .map_err(|e| pg_error("SAVEPOINT", e))
    }

    fn commit(mut self: Box<Self>) -> CloudResult<()> {
        self.client()
            .batch_execute("COMMIT")
            .map_err(|e| pg_error("COMMIT", e))?;
        self.done = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{redact_url, PostgresStore};
    use crate::CloudError;

    #[test]
    fn an_unreachable_server_fails_fast_without_the_password() {
        let start = std::time::Instant::now();
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let e = PostgresStore::open("postgres://phsync:s3cret@127.0.0.1:1/db")
            .err()
            .expect("nothing listens on port 1");
        let CloudError::Storage(message) = &e else {
            panic!("{e:?}");
        };
        assert!(
            message.starts_with(
                "cannot connect to PostgreSQL at postgres://phsync:***@127.0.0.1:1/db: "
            ),
            "{message}"
        );
        assert!(!message.contains("s3cret"), "{message}");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "waited {:?} for a refused connection",
            start.elapsed()
        );
    }

    #[test]
    fn urls_lose_their_password_in_messages() {
        assert_eq!(
            redact_url("postgres://phsync:s3cret@127.0.0.1:54329/db"),
            "postgres://phsync:***@127.0.0.1:54329/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("postgres://h"), "postgres://h");
        assert_eq!(
            redact_url("postgres://u:p@ss@h/db"),
            "postgres://u:***@h/db"
        );
    }
}
