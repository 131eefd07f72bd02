//! What callers see of the tenant. Field names are part of the JSON contract of the CLI
//! and the C ABI: change them only with a new ABI version.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Provisioned by a sync agent from on-prem AD; has a source anchor.
    Synced,
    /// Created in the cloud; always under the cloud password policy.
    Cloud,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Synced => "synced",
            Origin::Cloud => "cloud",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordSource {
    /// A PHS digest from on-prem AD.
    Synced,
    /// Set in the cloud: administrator reset or a user's own change.
    Cloud,
}

/// The state of a user's current password, without the secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasswordInfo {
    pub source: PasswordSource,
    /// On-prem change time for synced passwords, cloud time for cloud-set ones.
    pub changed_at: Timestamp,
    pub applied_at: Timestamp,
    pub force_change_at_next_sign_in: bool,
    /// `null`: never expires.
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub user_principal_name: String,
    /// base64 objectGUID: the immutable link to the on-prem object.
    pub source_anchor: Option<String>,
    pub display_name: Option<String>,
    pub enabled: bool,
    pub origin: Origin,
    pub created_at: Timestamp,
    pub password: Option<PasswordInfo>,
    /// Set while smart lockout refuses sign-ins.
    pub locked_until: Option<Timestamp>,
    /// What the tenant knows against the user's current password (e.g. leaked
    /// credentials). Absent from older services: empty.
    #[serde(default)]
    pub risks: Vec<UserRisk>,
}

/// A kind of risk the tenant records against a user's current password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskKind {
    /// The synced NT hash is in a leaked-credentials list (e.g. Have I Been Pwned).
    LeakedCredentials,
}

impl RiskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskKind::LeakedCredentials => "leaked_credentials",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "leaked_credentials" => Some(RiskKind::LeakedCredentials),
            _ => None,
        }
    }
}

/// One risk mark of a user: only its kind, when it was first detected for the current
/// password, and how often the hash appears in breaches. Never the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRisk {
    pub kind: RiskKind,
    pub detected_at: Timestamp,
    /// `null`: the list gives no count (a plain list of hashes).
    pub breach_count: Option<u64>,
}

/// A risk with the user it marks, for the administrators' list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskEntry {
    pub user_principal_name: String,
    pub source_anchor: Option<String>,
    pub kind: RiskKind,
    pub detected_at: Timestamp,
    pub breach_count: Option<u64>,
}

/// What the sync agent found when it checked a credential's NT hash against its leaked
/// list, before the hash was dropped. Sent with the credential; only the verdict travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakCheck {
    /// The hash is in the list.
    pub leaked: bool,
    /// Breaches the list counts for the hash (HIBP format); `null` for a plain list.
    #[serde(default)]
    pub breach_count: Option<u64>,
    /// A leaked password must be changed at next sign-in (`[audit] block_leaked_sign_in`).
    #[serde(default)]
    pub block_sign_in: bool,
}

impl LeakCheck {
    pub fn clean() -> Self {
        LeakCheck {
            leaked: false,
            breach_count: None,
            block_sign_in: false,
        }
    }

    pub fn leaked(breach_count: Option<u64>, block_sign_in: bool) -> Self {
        LeakCheck {
            leaked: true,
            breach_count,
            block_sign_in,
        }
    }
}

/// A synced user as the agent sees it on-prem.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncedUserSpec {
    pub source_anchor: String,
    pub user_principal_name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub enabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProvisionOutcome {
    Created,
    Updated,
    Unchanged,
}

/// A PHS digest on its way to the tenant, with the on-prem time of the password change.
pub struct SyncedCredential {
    pub source_anchor: String,
    pub digest: Zeroizing<String>,
    pub changed_at: Timestamp,
    pub force_change_at_next_sign_in: bool,
    /// `None`: not checked (no leaked list configured): the user's risk marks stay as they
    /// are, unless the password changes (a mark is about one password).
    pub leak_check: Option<LeakCheck>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CredentialOutcome {
    Applied,
    /// Not newer than the credential the tenant holds; nothing changed.
    Stale {
        current_changed_at: Timestamp,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetPasswordResult {
    pub user_principal_name: String,
    pub result: String,
    pub changed_at: Timestamp,
    pub force_change_at_next_sign_in: bool,
    pub password_expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInStatus {
    Success,
    /// Unknown user or wrong password: deliberately indistinguishable.
    InvalidCredentials,
    MustChangePassword,
    PasswordExpired,
    AccountDisabled,
    LockedOut,
}

impl SignInStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SignInStatus::Success => "success",
            SignInStatus::InvalidCredentials => "invalid_credentials",
            SignInStatus::MustChangePassword => "must_change_password",
            SignInStatus::PasswordExpired => "password_expired",
            SignInStatus::AccountDisabled => "account_disabled",
            SignInStatus::LockedOut => "locked_out",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignInResult {
    pub user_principal_name: String,
    pub result: SignInStatus,
    /// Bearer token of the new session, on success only.
    pub session_token: Option<String>,
    pub session_expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionInfo {
    pub user_principal_name: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub user_principal_name: Option<String>,
    pub source_anchor: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
}

/// What a tenant holds, for administrators and monitoring; no user data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantStatus {
    /// "sqlite", "postgresql", or for a remote tenant what its service reports.
    pub store: String,
    pub counts: super::store::StoreStats,
}
