//! The cloud tenant: the directory that receives PHS digests and signs users in.
//!
//! Callers (sync engine, CLI, C ABI) use the [`CloudTenant`] trait and [`open`]; the rules
//! live in [`LocalTenant`] over a [`store::TenantStore`] (SQLite embedded by default).
//! Errors are classified once ([`CloudError::kind`]): the engine, the service and the C ABI
//! derive their outage test, HTTP status and status code from it. The API's wire types
//! ([`wire`]) live here, shared by the remote client and the service. This crate knows
//! nothing of Active Directory.

mod error;
pub mod limits;
mod model;
mod policy;
mod postgres;
pub mod private_file;
mod remote;
mod risk;
mod secret;
mod sqlite;
pub mod store;
mod tenant;
mod time;
pub mod wire;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use error::{CloudError, CloudResult, ErrorKind};
pub use limits::{
    check_anchor, check_display_name, check_upn, MAX_ANCHOR_CHARS, MAX_DISPLAY_NAME_CHARS,
    MAX_UPN_CHARS,
};
pub use model::*;
pub use policy::TenantSettings;
pub use postgres::PostgresStore;
pub use remote::{probe_tls, service_host_port, RemoteTenant, TlsProbe};
pub use risk::LEAKED_ACTION;
pub use sqlite::SqliteStore;
pub use store::{StoreStats, TokenRole};
pub use tenant::LocalTenant;
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
pub use wire::TokenInfo;

/// UPNs are unique without regard to case.
pub fn upn_key(upn: &str) -> String {
    upn.to_lowercase()
}

/// The tenant operations every front door and the sync engine use. Refusals that are part
/// of normal operation (stale credential, wrong password) are `Ok` values, not errors.
pub trait CloudTenant: Send + Sync {
    /// Create a cloud-only user (no source anchor, always under cloud policy).
    fn add_cloud_user(&self, upn: &str, display_name: Option<&str>) -> CloudResult<User>;
    /// Create or update a synced user, matched by source anchor (UPN renames follow it).
    /// A sync agent's handle is refused another source's anchor (`AnchorOwned`) and a
    /// domain that is not its source's (`DomainOwned`).
    fn provision_synced_user(&self, spec: &SyncedUserSpec) -> CloudResult<ProvisionOutcome>;
    /// Apply a PHS digest if its on-prem change time is newer than the current password.
    fn apply_synced_credential(&self, cred: &SyncedCredential) -> CloudResult<CredentialOutcome>;
    /// Administrator reset under the cloud policy; ends every session of the user.
    fn set_password(
        &self,
        upn: &str,
        password: &[u16],
        force_change: bool,
    ) -> CloudResult<SetPasswordResult>;
    fn sign_in(&self, upn: &str, password: &[u16]) -> CloudResult<SignInResult>;
    /// A user's own change (at sign-in, e.g. must-change or expired); ends every other
    /// session of the user (the one it returns stays).
    fn change_password(&self, upn: &str, old: &[u16], new: &[u16]) -> CloudResult<SignInResult>;
    fn validate_session(&self, token: &str) -> CloudResult<Option<SessionInfo>>;
    fn user(&self, upn: &str) -> CloudResult<Option<User>>;
    fn user_by_anchor(&self, anchor: &str) -> CloudResult<Option<User>>;
    /// All users (for a sync agent of the service: the users of its source).
    fn users(&self) -> CloudResult<Vec<User>>;
    /// Delete a user (administrators); a synced one returns with the next sync in scope.
    fn delete_user(&self, upn: &str) -> CloudResult<()>;
    /// End every session of a user (administrators); how many were open.
    fn revoke_sessions(&self, upn: &str) -> CloudResult<u64>;
    /// Many users at once; one result per spec, in order. Remote tenants send one request.
    fn provision_synced_users(
        &self,
        specs: &[SyncedUserSpec],
    ) -> CloudResult<Vec<CloudResult<ProvisionOutcome>>> {
        Ok(specs
            .iter()
            .map(|s| self.provision_synced_user(s))
            .collect())
    }
    /// Many credentials at once; one result per credential, in order. `Err` only when the
    /// tenant could not be reached or failed as a whole: then nothing is known applied.
    fn apply_synced_credentials(
        &self,
        creds: &[SyncedCredential],
    ) -> CloudResult<Vec<CloudResult<CredentialOutcome>>> {
        Ok(creds
            .iter()
            .map(|c| self.apply_synced_credential(c))
            .collect())
    }
    fn status(&self) -> CloudResult<TenantStatus>;
    /// Newest first.
    fn audit_log(&self, limit: usize) -> CloudResult<Vec<AuditEntry>>;
    /// Users marked at risk (e.g. leaked credentials), by UPN; a sync agent's handle sees
    /// its source's only. Never a hash.
    fn risks(&self) -> CloudResult<Vec<RiskEntry>>;
    fn settings(&self) -> CloudResult<TenantSettings>;
    fn update_settings(&self, settings: &TenantSettings) -> CloudResult<()>;
}

/// Where a tenant lives: a tenant file path, a `postgres://` URL (the store itself) or an
/// `https://` URL of `phsync cloud serve` (with a token file and optionally a CA file).
#[derive(Debug, Clone, Default)]
pub struct TenantTarget {
    pub location: String,
    /// Remote only: a file holding the API token (agent or admin).
    pub token_file: Option<PathBuf>,
    /// Remote only: PEM CA certificate(s) to trust instead of the public roots.
    pub ca_file: Option<PathBuf>,
}

impl TenantTarget {
    pub fn new(location: impl Into<String>) -> Self {
        TenantTarget {
            location: location.into(),
            ..Default::default()
        }
    }

    pub fn is_remote(&self) -> bool {
        let l = self.location.to_ascii_lowercase();
        l.starts_with("https://") || l.starts_with("http://")
    }

    pub fn is_postgres(&self) -> bool {
        let l = self.location.to_ascii_lowercase();
        l.starts_with("postgres://") || l.starts_with("postgresql://")
    }

    /// The location without any password, for messages and logs.
    pub fn display(&self) -> String {
        postgres::redact_url(&self.location)
    }
}

/// Open a store (file or PostgreSQL) for the tenant rules and the service.
pub fn open_store(location: &str) -> CloudResult<Arc<dyn store::TenantStore>> {
    let target = TenantTarget::new(location);
    if target.is_postgres() {
        return Ok(Arc::new(PostgresStore::open(location)?));
    }
    if location.is_empty() || location.contains("://") {
        return Err(CloudError::UnsupportedTarget(target.display()));
    }
    Ok(Arc::new(SqliteStore::open(Path::new(location))?))
}

/// Open a tenant by location (see [`TenantTarget`]; remote ones need [`open_target`]).
pub fn open(target: &str, actor: &str) -> CloudResult<Box<dyn CloudTenant>> {
    open_target(&TenantTarget::new(target), actor)
}

pub fn open_target(target: &TenantTarget, actor: &str) -> CloudResult<Box<dyn CloudTenant>> {
    if target.is_remote() {
        return Ok(Box::new(RemoteTenant::open(target)?));
    }
    open_with_clock(&target.location, actor, Arc::new(SystemClock))
}

pub fn open_with_clock(
    target: &str,
    actor: &str,
    clock: Arc<dyn Clock>,
) -> CloudResult<Box<dyn CloudTenant>> {
    let store = open_store(target)?;
    Ok(Box::new(LocalTenant::new(store, clock).with_actor(actor)))
}
