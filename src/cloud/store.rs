//! The storage contract under the tenant rules. A store only keeps rows; every rule
//! (staleness, policy, lockout) lives in `tenant.rs`, written once for all stores.
//!
//! Atomicity is the store's job: a write transaction must be serialized against every other
//! writer of the same tenant (other threads, processes, service replicas), so the read-check-
//! write of a rule can never interleave with another.

use zeroize::Zeroizing;

use super::{CloudResult, Origin, PasswordSource, TenantSettings, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: i64,
    pub upn: String,
    pub source_anchor: Option<String>,
    pub display_name: Option<String>,
    pub enabled: bool,
    pub origin: Origin,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

pub struct NewUser<'a> {
    pub upn: &'a str,
    pub source_anchor: Option<&'a str>,
    pub display_name: Option<&'a str>,
    pub enabled: bool,
    pub origin: Origin,
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

pub enum UserKey<'a> {
    Id(i64),
    /// Normalized (lower-case) UPN.
    Upn(&'a str),
    Anchor(&'a str),
}

pub trait TenantStore: Send + Sync {
    /// A transaction that may write; serialized against all other writers.
    fn write(&self) -> CloudResult<Box<dyn StoreTx + '_>>;
}

/// One transaction. Dropping it without `commit` rolls back.
pub trait StoreTx {
    fn user(&mut self, key: UserKey<'_>) -> CloudResult<Option<UserRow>>;
    fn users(&mut self) -> CloudResult<Vec<UserRow>>;
    fn insert_user(&mut self, user: &NewUser<'_>) -> CloudResult<UserRow>;
    fn update_user(&mut self, user: &UserRow) -> CloudResult<()>;
    fn credential(&mut self, user_id: i64) -> CloudResult<Option<CredentialRow>>;
    fn put_credential(&mut self, user_id: i64, credential: &CredentialRow) -> CloudResult<()>;
    fn lockout(&mut self, upn_key: &str) -> CloudResult<Option<LockoutRow>>;
    fn put_lockout(&mut self, row: &LockoutRow) -> CloudResult<()>;
    fn delete_lockout(&mut self, upn_key: &str) -> CloudResult<()>;
    fn insert_session(&mut self, row: &SessionRow) -> CloudResult<()>;
    fn session(&mut self, token_hash: &[u8; 32]) -> CloudResult<Option<SessionRow>>;
    fn append_audit(&mut self, row: &AuditRow) -> CloudResult<()>;
    /// Newest first.
    fn audit(&mut self, limit: usize) -> CloudResult<Vec<AuditRow>>;
    fn settings(&mut self) -> CloudResult<TenantSettings>;
    fn put_settings(&mut self, settings: &TenantSettings) -> CloudResult<()>;
    fn commit(self: Box<Self>) -> CloudResult<()>;
}
