//! Request and response bodies of the tenant API, shared by the service and the remote
//! client so the two cannot drift. Passwords travel as JSON strings (UTF-8) over TLS.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::store::TokenRole;
use crate::{
    AuditEntry, CloudError, CredentialOutcome, LeakCheck, ProvisionOutcome, RiskEntry, StoreStats,
    SyncedUserSpec, Timestamp, User,
};

/// The most items one batch request may carry.
pub const MAX_BATCH: usize = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, machine-readable: "unauthorized", "anchor_not_found", ...
    pub code: String,
    pub message: String,
    /// policy_violation only: every rule the password breaks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl ErrorDetail {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ErrorDetail {
            code: code.into(),
            message: message.into(),
            problems: Vec::new(),
        }
    }
}

/// The API code and HTTP status of a tenant error: the code names the variant (part of the
/// API contract), the status comes from [`CloudError::kind`].
pub fn error_code(e: &CloudError) -> (&'static str, u16) {
    let code = match e {
        CloudError::UserNotFound(_) => "user_not_found",
        CloudError::AnchorNotFound(_) => "anchor_not_found",
        CloudError::UpnConflict(_) => "upn_conflict",
        CloudError::AnchorConflict(_) => "anchor_conflict",
        CloudError::InvalidUpn(..) => "invalid_upn",
        CloudError::PolicyViolation(_) => "policy_violation",
        CloudError::MalformedDigest(_) => "malformed_digest",
        CloudError::PasswordTooLong { .. } => "password_too_long",
        CloudError::InvalidPassword(_) => "invalid_password",
        CloudError::InvalidArgument(_) | CloudError::UnsupportedTarget(_) => "invalid_request",
        CloudError::Forbidden(_) => "forbidden",
        CloudError::DomainOwned(_) => "domain_owned_by_other_source",
        CloudError::AnchorOwned(_) => "anchor_owned_by_other_source",
        CloudError::Unauthorized(_) => "unauthorized",
        CloudError::Throttled { .. } => "too_many_requests",
        CloudError::Storage(_)
        | CloudError::TenantFile { .. }
        | CloudError::Unreachable(_)
        | CloudError::Remote { .. } => "storage_unavailable",
        CloudError::Random(_) => "internal",
    };
    (code, e.kind().http_status())
}

impl From<&CloudError> for ErrorDetail {
    fn from(e: &CloudError) -> Self {
        let (code, status) = error_code(e);
        let message = if status == 500 {
            "internal error; see the service log".to_string()
        } else if status >= 500 {
            // Store internals stay in the service log.
            "the tenant store is unavailable; retry later".to_string()
        } else {
            e.to_string()
        };
        ErrorDetail {
            code: code.into(),
            message,
            problems: match e {
                CloudError::PolicyViolation(p) => p.clone(),
                _ => Vec::new(),
            },
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionRequest {
    pub users: Vec<SyncedUserSpec>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ProvisionResponse {
    pub results: Vec<ProvisionItem>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ProvisionItem {
    Ok { outcome: ProvisionOutcome },
    Err { error: ErrorDetail },
}

/// One PHS digest. `Drop` wipes the digest.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialItem {
    pub source_anchor: String,
    pub digest: Zeroizing<String>,
    pub changed_at: Timestamp,
    #[serde(default)]
    pub force_change_at_next_sign_in: bool,
    /// The agent's leaked-list verdict on the hash (issue 18). Absent when the agent has
    /// no list, so requests stay as older services accept them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leak_check: Option<LeakCheck>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsRequest {
    pub credentials: Vec<CredentialItem>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CredentialsResponse {
    pub results: Vec<CredentialResultItem>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CredentialResultItem {
    Ok(CredentialOutcome),
    Err { error: ErrorDetail },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct UsersResponse {
    pub users: Vec<User>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCloudUser {
    pub user_principal_name: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPasswordRequest {
    pub password: Zeroizing<String>,
    #[serde(default)]
    pub force_change_at_next_sign_in: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    pub user_principal_name: String,
    pub password: Zeroizing<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub user_principal_name: String,
    pub old_password: Zeroizing<String>,
    pub new_password: Zeroizing<String>,
}

/// The answer to `DELETE /v1/users/{upn}/sessions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionsRevoked {
    pub user_principal_name: String,
    /// Sessions that were open and are now refused.
    pub revoked: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AuditResponse {
    pub entries: Vec<AuditEntry>,
}

/// The answer to `GET /v1/risks`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RisksResponse {
    pub risks: Vec<RiskEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StatusResponse {
    pub service: String,
    pub version: String,
    pub store: String,
    pub uptime_seconds: u64,
    pub counts: StoreStats,
}

/// What the token presented to the service is allowed to do (`GET /v1/token`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub role: TokenRole,
    pub source: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct HealthResponse {
    pub status: String,
}
