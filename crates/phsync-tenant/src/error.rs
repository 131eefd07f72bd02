use thiserror::Error;

/// Errors of the cloud tenant. None of them carries a password, hash or digest.
#[derive(Debug, Error)]
pub enum CloudError {
    #[error("no user with user principal name {0:?}")]
    UserNotFound(String),
    #[error("no synced user with source anchor {0:?} (provision the user before its credential)")]
    AnchorNotFound(String),
    #[error("user principal name {0:?} is already used by another user")]
    UpnConflict(String),
    #[error("source anchor {0:?} already belongs to another user")]
    AnchorConflict(String),
    #[error("invalid user principal name {0:?}: {1}")]
    InvalidUpn(String, &'static str),
    #[error("the password does not meet the cloud password policy: {}", .0.join("; "))]
    PolicyViolation(Vec<String>),
    #[error("malformed digest: {0}")]
    MalformedDigest(#[from] phsync_hash::DigestParseError),
    #[error("password is too long: {units} UTF-16 code units, the limit is {max}")]
    PasswordTooLong { units: usize, max: usize },
    #[error("invalid password: {0}")]
    InvalidPassword(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("unsupported tenant target {0:?}: expected a tenant file path, a postgres:// URL or an https:// service URL")]
    UnsupportedTarget(String),
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("the tenant service refused the credentials: {0}")]
    Unauthorized(String),
    #[error("the tenant service is unreachable: {0}")]
    Unreachable(String),
    #[error("too many attempts; retry in {retry_after_seconds} s")]
    Throttled { retry_after_seconds: u64 },
    #[error("the tenant service failed the request (HTTP {status}): {message}")]
    Remote { status: u16, message: String },
    #[error("tenant storage error: {0}")]
    Storage(String),
    #[error("tenant file {path}: {message}")]
    TenantFile { path: String, message: String },
}

impl From<rusqlite::Error> for CloudError {
    fn from(e: rusqlite::Error) -> Self {
        CloudError::Storage(e.to_string())
    }
}

impl From<phsync_hash::HashError> for CloudError {
    fn from(e: phsync_hash::HashError) -> Self {
        match e {
            phsync_hash::HashError::PasswordTooLong { units, max } => {
                CloudError::PasswordTooLong { units, max }
            }
            other => CloudError::InvalidPassword(other.to_string()),
        }
    }
}

pub type CloudResult<T> = Result<T, CloudError>;
