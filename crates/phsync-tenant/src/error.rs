use thiserror::Error;

/// Errors of the cloud tenant. None of them carries a password, hash or digest. A field that
/// names caller input (a UPN, an anchor, a domain) holds [`crate::limits::shown`]'s bounded,
/// escaped rendering of it, never the raw string, so messages stay short and printable.
#[derive(Debug, Error)]
pub enum CloudError {
    #[error("no user with user principal name \"{0}\"")]
    UserNotFound(String),
    #[error(
        "no synced user with source anchor \"{0}\" (provision the user before its credential)"
    )]
    AnchorNotFound(String),
    #[error("user principal name \"{0}\" is already used by another user")]
    UpnConflict(String),
    #[error("source anchor \"{0}\" already belongs to another user")]
    AnchorConflict(String),
    #[error("invalid user principal name \"{0}\": {1}")]
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
    /// An agent wrote a user in a domain (UPN suffix) that another sync source (or the
    /// cloud) owns.
    #[error("the domain \"{0}\" belongs to another sync source")]
    DomainOwned(String),
    /// An agent used a source anchor that belongs (or belonged, before a deletion) to
    /// another sync source.
    #[error("source anchor \"{0}\" belongs to another sync source")]
    AnchorOwned(String),
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
    /// The operating system's random generator failed: not an outage of the store, and not
    /// the caller's fault.
    #[error("the system random generator failed: {0}")]
    Random(String),
}

/// What kind of failure a [`CloudError`] is: the one classification the engine (outage or
/// per-user), the service (HTTP status and API code) and the C ABI (status code) derive from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No such user or anchor.
    NotFound,
    /// The UPN or anchor belongs to another user.
    Conflict,
    /// A malformed argument (UPN, target, request field).
    InvalidArgument,
    /// A digest that does not parse.
    MalformedDigest,
    /// A password over the length limit.
    PasswordTooLong,
    /// A password that is not valid text.
    InvalidPassword,
    /// The password breaks the cloud password policy.
    PolicyViolation,
    /// Authenticated, but not allowed to do this.
    Forbidden,
    /// The credentials (an API token) were refused.
    Unauthorized,
    /// Too many attempts; retry later.
    Throttled,
    /// The tenant store cannot be used now (database down, file unusable).
    StorageUnavailable,
    /// The tenant service cannot be reached.
    Unreachable,
    /// The tenant service failed the request.
    Remote,
    /// A failure of this host (the random generator), not of the tenant or the caller.
    Internal,
}

impl ErrorKind {
    /// The tenant as a whole is unusable right now (down, unreachable, our credentials
    /// refused, this host failing): a sync cycle stops and keeps its cursor instead of
    /// recording a per-user failure.
    pub fn is_outage(self) -> bool {
        matches!(
            self,
            ErrorKind::StorageUnavailable
                | ErrorKind::Unreachable
                | ErrorKind::Unauthorized
                | ErrorKind::Remote
                | ErrorKind::Internal
        )
    }

    /// The HTTP status the tenant service answers with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::InvalidArgument
            | ErrorKind::MalformedDigest
            | ErrorKind::PasswordTooLong
            | ErrorKind::InvalidPassword => 400,
            ErrorKind::PolicyViolation => 422,
            ErrorKind::Forbidden => 403,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Throttled => 429,
            ErrorKind::StorageUnavailable | ErrorKind::Unreachable | ErrorKind::Remote => 503,
            ErrorKind::Internal => 500,
        }
    }
}

impl CloudError {
    /// This error's kind (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            CloudError::UserNotFound(_) | CloudError::AnchorNotFound(_) => ErrorKind::NotFound,
            CloudError::UpnConflict(_) | CloudError::AnchorConflict(_) => ErrorKind::Conflict,
            CloudError::InvalidUpn(..)
            | CloudError::InvalidArgument(_)
            | CloudError::UnsupportedTarget(_) => ErrorKind::InvalidArgument,
            CloudError::PolicyViolation(_) => ErrorKind::PolicyViolation,
            CloudError::MalformedDigest(_) => ErrorKind::MalformedDigest,
            CloudError::PasswordTooLong { .. } => ErrorKind::PasswordTooLong,
            CloudError::InvalidPassword(_) => ErrorKind::InvalidPassword,
            CloudError::Forbidden(_) | CloudError::DomainOwned(_) | CloudError::AnchorOwned(_) => {
                ErrorKind::Forbidden
            }
            CloudError::Unauthorized(_) => ErrorKind::Unauthorized,
            CloudError::Throttled { .. } => ErrorKind::Throttled,
            CloudError::Storage(_) | CloudError::TenantFile { .. } => ErrorKind::StorageUnavailable,
            CloudError::Unreachable(_) => ErrorKind::Unreachable,
            CloudError::Remote { .. } => ErrorKind::Remote,
            CloudError::Random(_) => ErrorKind::Internal,
        }
    }

    /// A store failure, with the store's message (kept for the log; the service never sends
    /// it to clients).
    pub fn storage(e: impl std::fmt::Display) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_random_generator_failure_is_internal_not_storage() {
        let e = CloudError::Random("getrandom: unavailable".into());
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert_eq!(crate::wire::error_code(&e), ("internal", 500));
        assert_eq!(
            crate::wire::ErrorDetail::from(&e).message,
            "internal error; see the service log"
        );
        // Still an outage for the engine: the cycle stops with its cursor kept.
        assert!(e.kind().is_outage());
    }

    #[test]
    fn every_kind_has_one_status_and_outages_are_server_side() {
        let cases = [
            (CloudError::UserNotFound("a".into()), 404, false),
            (CloudError::AnchorConflict("a".into()), 409, false),
            (CloudError::PolicyViolation(vec![]), 422, false),
            (CloudError::Unauthorized("t".into()), 401, true),
            (
                CloudError::Throttled {
                    retry_after_seconds: 1,
                },
                429,
                false,
            ),
            (CloudError::Storage("db".into()), 503, true),
            (CloudError::Unreachable("x".into()), 503, true),
        ];
        for (e, status, outage) in cases {
            assert_eq!(e.kind().http_status(), status, "{e}");
            assert_eq!(e.kind().is_outage(), outage, "{e}");
        }
    }
}
