//! The cloud tenant: the directory that receives PHS digests and signs users in.
//!
//! Callers (sync engine, CLI, C ABI) use the [`CloudTenant`] trait and [`open`]; the rules
//! live in [`LocalTenant`] over a [`store::TenantStore`] (SQLite embedded by default).
//! This module knows nothing of Active Directory.

mod error;
mod model;
mod policy;
mod secret;
mod sqlite;
pub mod store;
mod tenant;
mod time;

use std::path::Path;
use std::sync::Arc;

pub use error::{CloudError, CloudResult};
pub use model::*;
pub use policy::TenantSettings;
pub use sqlite::SqliteStore;
pub use tenant::LocalTenant;
pub use time::{Clock, ManualClock, SystemClock, Timestamp};

/// UPNs are unique without regard to case.
pub(crate) fn upn_key(upn: &str) -> String {
    upn.to_lowercase()
}

/// The tenant operations every front door and the sync engine use. Refusals that are part
/// of normal operation (stale credential, wrong password) are `Ok` values, not errors.
pub trait CloudTenant: Send + Sync {
    /// Create a cloud-only user (no source anchor, always under cloud policy).
    fn add_cloud_user(&self, upn: &str, display_name: Option<&str>) -> CloudResult<User>;
    /// Create or update a synced user, matched by source anchor (UPN renames follow it).
    fn provision_synced_user(&self, spec: &SyncedUserSpec) -> CloudResult<ProvisionOutcome>;
    /// Apply a PHS digest if its on-prem change time is newer than the current password.
    fn apply_synced_credential(&self, cred: &SyncedCredential) -> CloudResult<CredentialOutcome>;
    /// Administrator reset under the cloud policy.
    fn set_password(
        &self,
        upn: &str,
        password: &[u16],
        force_change: bool,
    ) -> CloudResult<SetPasswordResult>;
    fn sign_in(&self, upn: &str, password: &[u16]) -> CloudResult<SignInResult>;
    /// A user's own change (at sign-in, e.g. must-change or expired).
    fn change_password(&self, upn: &str, old: &[u16], new: &[u16]) -> CloudResult<SignInResult>;
    fn validate_session(&self, token: &str) -> CloudResult<Option<SessionInfo>>;
    fn user(&self, upn: &str) -> CloudResult<Option<User>>;
    fn user_by_anchor(&self, anchor: &str) -> CloudResult<Option<User>>;
    fn users(&self) -> CloudResult<Vec<User>>;
    /// Newest first.
    fn audit_log(&self, limit: usize) -> CloudResult<Vec<AuditEntry>>;
    fn settings(&self) -> CloudResult<TenantSettings>;
    fn update_settings(&self, settings: &TenantSettings) -> CloudResult<()>;
}

/// Open a tenant by target: a path to a tenant file (created on first use).
pub fn open(target: &str, actor: &str) -> CloudResult<Box<dyn CloudTenant>> {
    open_with_clock(target, actor, Arc::new(SystemClock))
}

pub fn open_with_clock(
    target: &str,
    actor: &str,
    clock: Arc<dyn Clock>,
) -> CloudResult<Box<dyn CloudTenant>> {
    if target.is_empty() || target.contains("://") {
        return Err(CloudError::UnsupportedTarget(target.to_string()));
    }
    let store = SqliteStore::open(Path::new(target))?;
    Ok(Box::new(
        LocalTenant::new(Box::new(store), clock).with_actor(actor),
    ))
}
