//! Status codes and errors: the `phs_status` enum, the one mapping of every Rust error to a
//! status, and the thread-local last error message.

use std::cell::RefCell;
use std::ffi::{CStr, CString};

use phsync_engine::SyncError;
use phsync_hash::{DigestParseError, HashError};
use phsync_tenant::{CloudError, ErrorKind};

/// Result of every fallible export: `PHS_OK` (0) or a negative `PHS_E_*` code.
/// `phs_status_name()` gives a code's name, `phs_last_error_message()` the message of the
/// last failure on the calling thread.
#[allow(non_camel_case_types)]
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum phs_status {
    /// Success.
    PHS_OK = 0,
    /// A required pointer argument was NULL.
    PHS_E_NULL_ARGUMENT = -1,
    /// A string argument was not valid UTF-8.
    PHS_E_INVALID_UTF8 = -2,
    /// The output buffer is too small; nothing useful was written.
    PHS_E_BUFFER_TOO_SMALL = -3,
    /// A digest string is not a well-formed `v1;PPH1_MD4,...` digest.
    PHS_E_MALFORMED_DIGEST = -4,
    /// The password is longer than 512 UTF-16 code units.
    PHS_E_PASSWORD_TOO_LONG = -5,
    /// An argument is out of its documented range.
    PHS_E_INVALID_ARGUMENT = -6,
    /// The operating system's random number generator failed.
    PHS_E_RANDOM = -7,
    /// No such user (or, for synced credentials, no user with that source anchor yet).
    PHS_E_NOT_FOUND = -10,
    /// The password does not meet the cloud password policy; the message lists why.
    PHS_E_PASSWORD_POLICY = -11,
    /// A user principal name or source anchor is already taken.
    PHS_E_CONFLICT = -12,
    /// The tenant's storage failed (file unreadable, disk full, ...).
    PHS_E_STORAGE = -13,
    /// A password cannot be used (e.g. an unpaired surrogate in a cloud password).
    PHS_E_INVALID_PASSWORD = -14,
    /// The tenant service refused the token, or the token may not do this.
    PHS_E_ACCESS_DENIED = -15,
    /// The tenant service cannot be reached (connection, TLS or timeout); retry later.
    PHS_E_UNREACHABLE = -16,
    /// Too many attempts for this user or client; the message says when to retry.
    PHS_E_THROTTLED = -17,
    /// The tenant service failed the request or answered something unexpected.
    PHS_E_REMOTE = -18,
    /// The config file is missing, unreadable or invalid; the message names the key.
    PHS_E_CONFIG = -20,
    /// The domain controller's LDAP service failed (unreachable, credentials, TLS, scope).
    PHS_E_DIRECTORY = -21,
    /// Replication (MS-DRSR) failed: unreachable, credentials, missing rights, protocol.
    PHS_E_REPLICATION = -22,
    /// The host is in FIPS mode and `allow_non_fips_crypto` is not set.
    PHS_E_FIPS = -23,
    /// The engine's state directory or event log could not be used, or the stored
    /// replication cursor is unreadable (a full sync rewrites it).
    PHS_E_STATE = -24,
    /// The caller stopped the cycle (progress callback returned nonzero); what was applied
    /// stays applied, the cursor was not advanced past it, the next cycle resumes.
    PHS_E_CANCELLED = -25,
    /// A bug in phsync (a caught panic), or a failure of this host the caller cannot fix
    /// (the async runtime could not start); the message says which.
    PHS_E_INTERNAL = -99,
}

/// Lists every variant once; the `match` in `name` is exhaustive, so a variant added to the
/// enum and not here does not compile. Names are the variant identifiers themselves.
macro_rules! status_table {
    ($($variant:ident),* $(,)?) => {
        impl phs_status {
            /// Every status, in declaration order.
            #[allow(dead_code)] // used by the tests
            pub const ALL: &'static [phs_status] = &[$(phs_status::$variant),*];

            /// The status's C name, e.g. `PHS_E_NULL_ARGUMENT`.
            pub const fn name(self) -> &'static CStr {
                match self {
                    $(phs_status::$variant => {
                        match CStr::from_bytes_with_nul(
                            concat!(stringify!($variant), "\0").as_bytes(),
                        ) {
                            Ok(name) => name,
                            Err(_) => panic!("status names have no interior NUL"),
                        }
                    })*
                }
            }

            /// The status with this value, if there is one.
            pub const fn from_raw(value: i32) -> Option<phs_status> {
                $(if value == phs_status::$variant as i32 {
                    return Some(phs_status::$variant);
                })*
                None
            }
        }
    };
}

status_table!(
    PHS_OK,
    PHS_E_NULL_ARGUMENT,
    PHS_E_INVALID_UTF8,
    PHS_E_BUFFER_TOO_SMALL,
    PHS_E_MALFORMED_DIGEST,
    PHS_E_PASSWORD_TOO_LONG,
    PHS_E_INVALID_ARGUMENT,
    PHS_E_RANDOM,
    PHS_E_NOT_FOUND,
    PHS_E_PASSWORD_POLICY,
    PHS_E_CONFLICT,
    PHS_E_STORAGE,
    PHS_E_INVALID_PASSWORD,
    PHS_E_ACCESS_DENIED,
    PHS_E_UNREACHABLE,
    PHS_E_THROTTLED,
    PHS_E_REMOTE,
    PHS_E_CONFIG,
    PHS_E_DIRECTORY,
    PHS_E_REPLICATION,
    PHS_E_FIPS,
    PHS_E_STATE,
    PHS_E_CANCELLED,
    PHS_E_INTERNAL,
);

use phs_status::*;

/// An error on its way to C: the status and a message free of secrets.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub status: phs_status,
    pub message: String,
}

impl FfiError {
    pub fn new(status: phs_status, message: impl Into<String>) -> Self {
        FfiError {
            status,
            message: message.into(),
        }
    }

    pub fn null(name: &str) -> Self {
        FfiError::new(PHS_E_NULL_ARGUMENT, format!("argument `{name}` is NULL"))
    }

    pub fn invalid_utf8(name: &str) -> Self {
        FfiError::new(
            PHS_E_INVALID_UTF8,
            format!("argument `{name}` is not valid UTF-8"),
        )
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        FfiError::new(PHS_E_INVALID_ARGUMENT, message)
    }

    /// Record the message for `phs_last_error_message` and give the status to return.
    pub fn report(self) -> phs_status {
        set_last_error(&self.message);
        self.status
    }

    /// The status of a cloud error: its `ErrorKind`, classified once in phsync-tenant.
    pub fn from_cloud_status(e: &CloudError) -> phs_status {
        match e.kind() {
            ErrorKind::NotFound => PHS_E_NOT_FOUND,
            ErrorKind::Conflict => PHS_E_CONFLICT,
            ErrorKind::PolicyViolation => PHS_E_PASSWORD_POLICY,
            ErrorKind::MalformedDigest => PHS_E_MALFORMED_DIGEST,
            ErrorKind::PasswordTooLong => PHS_E_PASSWORD_TOO_LONG,
            ErrorKind::InvalidPassword => PHS_E_INVALID_PASSWORD,
            ErrorKind::InvalidArgument => PHS_E_INVALID_ARGUMENT,
            ErrorKind::StorageUnavailable => PHS_E_STORAGE,
            ErrorKind::Forbidden | ErrorKind::Unauthorized => PHS_E_ACCESS_DENIED,
            ErrorKind::Unreachable => PHS_E_UNREACHABLE,
            ErrorKind::Throttled => PHS_E_THROTTLED,
            ErrorKind::Remote => PHS_E_REMOTE,
            ErrorKind::Internal => PHS_E_RANDOM,
        }
    }
}

impl From<HashError> for FfiError {
    fn from(e: HashError) -> Self {
        let status = match e {
            HashError::PasswordTooLong { .. } => PHS_E_PASSWORD_TOO_LONG,
            HashError::InvalidUtf8 => PHS_E_INVALID_UTF8,
            HashError::MalformedDigest(_) => PHS_E_MALFORMED_DIGEST,
            HashError::IterationsOutOfRange(_)
            | HashError::MalformedNtHash
            | HashError::MalformedSalt => PHS_E_INVALID_ARGUMENT,
            HashError::Random(_) => PHS_E_RANDOM,
        };
        FfiError::new(status, e.to_string())
    }
}

impl From<DigestParseError> for FfiError {
    fn from(e: DigestParseError) -> Self {
        HashError::from(e).into()
    }
}

impl From<CloudError> for FfiError {
    fn from(e: CloudError) -> Self {
        FfiError::new(FfiError::from_cloud_status(&e), e.to_string())
    }
}

impl From<SyncError> for FfiError {
    fn from(e: SyncError) -> Self {
        let status = match &e {
            SyncError::Config(_) => PHS_E_CONFIG,
            SyncError::Fips => PHS_E_FIPS,
            SyncError::Directory(_) => PHS_E_DIRECTORY,
            SyncError::Replication(_) => PHS_E_REPLICATION,
            SyncError::Interrupted => PHS_E_CANCELLED,
            SyncError::Tenant(c) => FfiError::from_cloud_status(c),
            SyncError::State(_) | SyncError::CursorUnreadable(_) | SyncError::EventLog { .. } => {
                PHS_E_STATE
            }
            SyncError::Host(_) => PHS_E_INTERNAL,
            SyncError::Random(_) => PHS_E_RANDOM,
            SyncError::UserNotFound(_) => PHS_E_NOT_FOUND,
        };
        FfiError::new(status, e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Replace this thread's last error message (NULs become spaces).
pub(crate) fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = c;
        }
    });
}

/// Run `f` on this thread's last error message (without its NUL).
pub(crate) fn with_last_error<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    LAST_ERROR.with(|slot| f(slot.borrow().as_bytes()))
}

/// Record a caught panic as this thread's last error; the status to return is
/// `PHS_E_INTERNAL`.
pub(crate) fn report_panic(payload: &(dyn std::any::Any + Send)) -> phs_status {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    set_last_error(&format!("internal error in phsync (please report): {what}"));
    PHS_E_INTERNAL
}
