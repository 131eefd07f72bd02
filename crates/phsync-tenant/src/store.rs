//! The storage contract under the tenant rules. A store only keeps rows; every rule
//! (staleness, policy, lockout) lives in `tenant.rs`, written once for all stores.
//!
//! Atomicity is the store's job: a write transaction must be serialized against every other
//! writer of the same tenant (other threads, processes, service replicas), so the read-check-
//! write of a rule can never interleave with another.

use zeroize::Zeroizing;

use super::{CloudResult, Origin, PasswordSource, RiskKind, TenantSettings, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: i64,
    pub upn: String,
    pub source_anchor: Option<String>,
    pub display_name: Option<String>,
    pub enabled: bool,
    pub origin: Origin,
    /// The sync source (agent scope) that provisioned a synced user; `None` for cloud users
    /// and for users synced into an embedded tenant.
    pub source: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

pub struct NewUser<'a> {
    pub upn: &'a str,
    pub source_anchor: Option<&'a str>,
    pub display_name: Option<&'a str>,
    pub enabled: bool,
    pub origin: Origin,
    pub source: Option<&'a str>,
    pub now: Timestamp,
}

/// A user's one current password. `secret` is the PHS digest string (synced) or a PHC
/// Argon2id string (cloud); it never leaves the tenant.
pub struct CredentialRow {
    pub source: PasswordSource,
    pub secret: Zeroizing<String>,
    pub changed_at: Timestamp,
    pub applied_at: Timestamp,
    pub force_change: bool,
}

/// Smart-lockout state, keyed by normalized UPN whether or not the user exists, so lockout
/// cannot be used to tell real accounts from unknown ones.
#[derive(Clone)]
pub struct LockoutRow {
    pub upn_key: String,
    pub failures: u32,
    pub window_start: Timestamp,
    pub locked_until: Option<Timestamp>,
    /// Salt for the fingerprints of recent wrong passwords.
    pub salt: [u8; 10],
    /// PBKDF2 fingerprints of the last distinct wrong passwords (not the passwords).
    pub recent: Vec<[u8; 32]>,
}

pub struct SessionRow {
    pub token_hash: [u8; 32],
    pub user_id: i64,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

pub struct AuditRow {
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub upn: Option<String>,
    pub source_anchor: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
}

/// A risk mark of a user (one per user and kind). Never holds a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskRow {
    pub user_id: i64,
    pub kind: RiskKind,
    pub detected_at: Timestamp,
    pub breach_count: Option<u64>,
}

/// A service API token. Only a hash of its secret is stored; `id` is public and names it.
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub role: TokenRole,
    /// Agents only: the sync source whose users the token may write.
    pub source: Option<String>,
    pub secret_hash: [u8; 32],
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenRole {
    /// A sync agent: provisions users and posts credentials for one source.
    Agent,
    /// An administrator: users, resets, audit, settings, status.
    Admin,
}

impl TokenRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Agent => "agent",
            TokenRole::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "agent" => Some(TokenRole::Agent),
            "admin" => Some(TokenRole::Admin),
            _ => None,
        }
    }
}

/// Row counts for status pages and for checking that nothing was lost.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreStats {
    pub users: u64,
    pub synced_users: u64,
    pub cloud_users: u64,
    pub credentials: u64,
    pub sessions: u64,
    pub audit_entries: u64,
}

pub enum UserKey<'a> {
    Id(i64),
    /// Normalized (lower-case) UPN.
    Upn(&'a str),
    Anchor(&'a str),
}

/// The one savepoint of a batch item (see [`StoreTx::savepoint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Savepoint {
    /// Mark the start of an item.
    Begin,
    /// Undo the item's writes (the savepoint stays until `End`).
    Undo,
    /// Forget the mark; the item's writes (if not undone) stay in the transaction.
    End,
}

impl Savepoint {
    /// The SQL, the same in SQLite and PostgreSQL.
    pub fn sql(self) -> &'static str {
        match self {
            Savepoint::Begin => "SAVEPOINT batch_item",
            Savepoint::Undo => "ROLLBACK TO SAVEPOINT batch_item",
            Savepoint::End => "RELEASE SAVEPOINT batch_item",
        }
    }
}

pub trait TenantStore: Send + Sync {
    /// A transaction that may write. Stores that run transactions concurrently (PostgreSQL)
    /// serialize them per user: see [`StoreTx::user`] and [`StoreTx::lockout`].
    fn write(&self) -> CloudResult<Box<dyn StoreTx + '_>>;
    /// "sqlite" or "postgresql", for status pages.
    fn kind(&self) -> &'static str;
}

/// One transaction. Dropping it without `commit` rolls back.
pub trait StoreTx {
    /// The user, locked against other transactions until this one ends: every rule that
    /// reads then writes a user's rows starts here, so two writers of one user queue.
    fn user(&mut self, key: UserKey<'_>) -> CloudResult<Option<UserRow>>;
    /// All users, or only those of one sync source; not locked.
    fn users(&mut self, source: Option<&str>) -> CloudResult<Vec<UserRow>>;
    fn insert_user(&mut self, user: &NewUser<'_>) -> CloudResult<UserRow>;
    fn update_user(&mut self, user: &UserRow) -> CloudResult<()>;
    /// Delete a user with its credential and sessions.
    fn delete_user(&mut self, user_id: i64) -> CloudResult<()>;
    fn credential(&mut self, user_id: i64) -> CloudResult<Option<CredentialRow>>;
    fn put_credential(&mut self, user_id: i64, credential: &CredentialRow) -> CloudResult<()>;
    /// Store `credential` only if it is newer than the stored one, decided in the same SQL
    /// statement that writes it, so no interleaving can let an older change win. `None`:
    /// stored; `Some(t)`: refused, the stored credential changed at `t`.
    fn put_credential_if_newer(
        &mut self,
        user_id: i64,
        credential: &CredentialRow,
    ) -> CloudResult<Option<Timestamp>>;
    /// The lockout row; the UPN is locked against other transactions until this one ends
    /// (whether or not a row or a user exists), so concurrent failures all count.
    fn lockout(&mut self, upn_key: &str) -> CloudResult<Option<LockoutRow>>;
    fn put_lockout(&mut self, row: &LockoutRow) -> CloudResult<()>;
    fn delete_lockout(&mut self, upn_key: &str) -> CloudResult<()>;
    fn insert_session(&mut self, row: &SessionRow) -> CloudResult<()>;
    fn session(&mut self, token_hash: &[u8; 32]) -> CloudResult<Option<SessionRow>>;
    /// The sync source that claimed `anchor` (see [`StoreTx::claim_anchor`]); a claim
    /// outlives the user, so a deleted user's anchor stays its source's.
    fn anchor_claim(&mut self, anchor: &str) -> CloudResult<Option<String>>;
    /// Record that `source` owns `anchor`, unless the anchor is already claimed.
    fn claim_anchor(&mut self, anchor: &str, source: &str) -> CloudResult<()>;
    /// The sync source that claimed a domain (lower-case UPN suffix). The domain is locked
    /// against other transactions until this one ends, so two sources cannot both claim it.
    fn domain_claim(&mut self, domain: &str) -> CloudResult<Option<String>>;
    /// Record that `source` owns `domain`, unless the domain is already claimed.
    fn claim_domain(&mut self, domain: &str, source: &str) -> CloudResult<()>;
    /// Whether a user in `domain` (lower-case UPN suffix) is not one of `source`'s synced
    /// users: a cloud user, or a user of another (or of no) sync source.
    fn domain_has_others(&mut self, domain: &str, source: &str) -> CloudResult<bool>;
    /// Delete every session of a user, or every one but `keep`; how many were deleted.
    fn delete_sessions(&mut self, user_id: i64, keep: Option<&[u8; 32]>) -> CloudResult<u64>;
    fn append_audit(&mut self, row: &AuditRow) -> CloudResult<()>;
    /// Newest first.
    fn audit(&mut self, limit: usize) -> CloudResult<Vec<AuditRow>>;
    fn settings(&mut self) -> CloudResult<TenantSettings>;
    fn put_settings(&mut self, settings: &TenantSettings) -> CloudResult<()>;
    fn insert_token(&mut self, token: &TokenRow) -> CloudResult<()>;
    fn token(&mut self, id: &str) -> CloudResult<Option<TokenRow>>;
    fn tokens(&mut self) -> CloudResult<Vec<TokenRow>>;
    /// Revoke a token; `false` if there is no such (unrevoked) token.
    fn revoke_token(&mut self, id: &str, at: Timestamp) -> CloudResult<bool>;
    /// Risk marks with their users, ordered by UPN: of one user, or of every user (only a
    /// sync source's when `source` is given). Not locked.
    fn risks(
        &mut self,
        user_id: Option<i64>,
        source: Option<&str>,
    ) -> CloudResult<Vec<(UserRow, RiskRow)>>;
    /// Insert or replace the user's mark of `row.kind`.
    fn put_risk(&mut self, row: &RiskRow) -> CloudResult<()>;
    /// Remove a user's mark of `kind`; whether there was one.
    fn delete_risk(&mut self, user_id: i64, kind: RiskKind) -> CloudResult<bool>;
    fn stats(&mut self) -> CloudResult<StoreStats>;
    /// Batch calls run many items in one transaction, each inside a savepoint, so one item's
    /// failure undoes only its own writes.
    fn savepoint(&mut self, step: Savepoint) -> CloudResult<()>;
    fn commit(self: Box<Self>) -> CloudResult<()>;
}
