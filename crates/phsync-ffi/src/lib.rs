//! The C ABI: a thin layer over the safe Rust API.
//!
//! Every export runs inside [`ffi_boundary!`], so a panic becomes `PHS_E_INTERNAL` with a
//! message instead of unwinding into (and, since Rust 1.81, aborting) the host process.
//! Errors are mapped to status codes here and nowhere else.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};

use phsync_hash::HashError;
use phsync_tenant::{CloudError, ErrorKind};

mod cloud;
mod engine;
mod hash;

pub use cloud::*;
pub use engine::*;
pub use hash::*;

/// Result of every fallible export: `PHS_OK` or a negative `PHS_E_*` code.
#[allow(non_camel_case_types)]
pub type phs_status = i32;

/// Bumped on any incompatible change to the C ABI.
pub const PHS_ABI_VERSION: u32 = 2;

pub const PHS_OK: phs_status = 0;
/// A required pointer argument was NULL.
pub const PHS_E_NULL_ARGUMENT: phs_status = -1;
/// A string argument was not valid UTF-8.
pub const PHS_E_INVALID_UTF8: phs_status = -2;
/// The output buffer is too small; nothing useful was written.
pub const PHS_E_BUFFER_TOO_SMALL: phs_status = -3;
/// A digest string is not a well-formed `v1;PPH1_MD4,...` digest.
pub const PHS_E_MALFORMED_DIGEST: phs_status = -4;
/// The password is longer than 512 UTF-16 code units.
pub const PHS_E_PASSWORD_TOO_LONG: phs_status = -5;
/// An argument is out of its documented range.
pub const PHS_E_INVALID_ARGUMENT: phs_status = -6;
/// The operating system's random number generator failed.
pub const PHS_E_RANDOM: phs_status = -7;
/// No such user (or, for synced credentials, no user with that source anchor yet).
pub const PHS_E_NOT_FOUND: phs_status = -10;
/// The password does not meet the cloud password policy; the message lists why.
pub const PHS_E_PASSWORD_POLICY: phs_status = -11;
/// A user principal name or source anchor is already taken.
pub const PHS_E_CONFLICT: phs_status = -12;
/// The tenant's storage failed (file unreadable, disk full, ...).
pub const PHS_E_STORAGE: phs_status = -13;
/// A password cannot be used (e.g. an unpaired surrogate in a cloud password).
pub const PHS_E_INVALID_PASSWORD: phs_status = -14;
/// The tenant service refused the token, or the token may not do this.
pub const PHS_E_ACCESS_DENIED: phs_status = -15;
/// The tenant service cannot be reached (connection, TLS or timeout); retry later.
pub const PHS_E_UNREACHABLE: phs_status = -16;
/// Too many attempts for this user or client; the message says when to retry.
pub const PHS_E_THROTTLED: phs_status = -17;
/// The tenant service failed the request or answered something unexpected.
pub const PHS_E_REMOTE: phs_status = -18;
/// A bug in phsync (a caught panic); the message says where.
pub const PHS_E_INTERNAL: phs_status = -99;

/// Enough bytes for any digest string plus its NUL terminator.
pub const PHS_DIGEST_STRING_CAPACITY: usize = 128;
/// Bytes in an NT hash.
pub const PHS_NT_HASH_LEN: usize = 16;
/// Bytes in a digest salt.
pub const PHS_SALT_LEN: usize = 10;

/// An error on its way to C: the status and a message free of secrets.
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

impl FfiError {
    pub(crate) fn from_cloud_status(e: &CloudError) -> phs_status {
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

impl From<CloudError> for FfiError {
    fn from(e: CloudError) -> Self {
        FfiError::new(FfiError::from_cloud_status(&e), e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = c);
}

pub(crate) fn panic_message_of(payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error in phsync (please report): {what}")
}

/// The one panic boundary. `$body` evaluates to `Result<(), FfiError>`.
macro_rules! ffi_boundary {
    ($body:block) => {{
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(
            || -> ::std::result::Result<(), $crate::FfiError> { $body },
        )) {
            Ok(Ok(())) => $crate::PHS_OK,
            Ok(Err(e)) => {
                $crate::set_last_error(&e.message);
                e.status
            }
            Err(payload) => {
                $crate::set_last_error(&$crate::panic_message_of(&*payload));
                $crate::PHS_E_INTERNAL
            }
        }
    }};
}
pub(crate) use ffi_boundary;

/// Borrow `len` bytes at `ptr`; `name` is used in the error message.
///
/// # Safety
/// `ptr` must be NULL or valid for `len` reads.
pub(crate) unsafe fn bytes_arg<'a, T>(
    ptr: *const T,
    len: usize,
    name: &str,
) -> Result<&'a [T], FfiError> {
    if ptr.is_null() {
        return Err(FfiError::null(name));
    }
    Ok(std::slice::from_raw_parts(ptr, len))
}

/// Borrow a NUL-terminated UTF-8 string.
///
/// # Safety
/// `ptr` must be NULL or point to a NUL-terminated string.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::null(name));
    }
    CStr::from_ptr(ptr).to_str().map_err(|_| {
        FfiError::new(
            PHS_E_INVALID_UTF8,
            format!("argument `{name}` is not valid UTF-8"),
        )
    })
}

/// Copy `s` and a NUL into `out[..capacity]`, or fail without writing if it does not fit.
///
/// # Safety
/// `out` must be NULL or valid for `capacity` writes.
pub(crate) unsafe fn write_c_string(
    s: &str,
    out: *mut c_char,
    capacity: usize,
) -> Result<(), FfiError> {
    if out.is_null() {
        return Err(FfiError::null("out"));
    }
    let needed = s.len() + 1;
    if capacity < needed {
        return Err(FfiError::new(
            PHS_E_BUFFER_TOO_SMALL,
            format!("output buffer holds {capacity} bytes, {needed} are needed"),
        ));
    }
    std::ptr::copy_nonoverlapping(s.as_ptr(), out.cast::<u8>(), s.len());
    *out.add(s.len()) = 0;
    Ok(())
}

/// Hand a JSON result to C: a NUL-terminated string the caller frees with `phs_string_free`.
///
/// # Safety
/// `out` must be NULL or writable.
pub(crate) unsafe fn write_json<T: serde::Serialize>(
    value: &T,
    out: *mut *mut c_char,
) -> Result<(), FfiError> {
    if out.is_null() {
        return Err(FfiError::null("out_json"));
    }
    let text = serde_json::to_string(value).expect("results serialize");
    *out = CString::new(text).expect("JSON has no NUL").into_raw();
    Ok(())
}

/// Free a string phsync returned (`out_json` results). NULL is a no-op.
///
/// # Safety
/// `s` must be NULL or a string from phsync not yet freed.
#[no_mangle]
pub unsafe extern "C" fn phs_string_free(s: *mut c_char) {
    if !s.is_null() {
        let _ = std::panic::catch_unwind(|| drop(CString::from_raw(s)));
    }
}

/// Version of the C ABI this library implements (`PHS_ABI_VERSION`).
#[no_mangle]
pub extern "C" fn phs_abi_version() -> u32 {
    PHS_ABI_VERSION
}

/// Copy the message of the last failure on this thread into `buf` (NUL-terminated,
/// truncated to `capacity`). Returns the buffer size the whole message needs, NUL included;
/// call with `buf` NULL or `capacity` 0 to ask. Messages never contain secrets.
///
/// # Safety
/// `buf` must be NULL or valid for `capacity` writes.
#[no_mangle]
pub unsafe extern "C" fn phs_last_error_message(buf: *mut c_char, capacity: usize) -> usize {
    let copied = std::panic::catch_unwind(|| {
        LAST_ERROR.with(|slot| {
            let msg = slot.borrow();
            let bytes = msg.as_bytes();
            if !buf.is_null() && capacity > 0 {
                let n = bytes.len().min(capacity - 1);
                // SAFETY: the caller promises `buf` holds `capacity` bytes; n < capacity.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), n);
                    *buf.add(n) = 0;
                }
            }
            bytes.len() + 1
        })
    });
    copied.unwrap_or(1)
}

/// A static, NUL-terminated name for a status code ("PHS_OK", "PHS_E_NULL_ARGUMENT", ...).
#[no_mangle]
pub extern "C" fn phs_status_name(status: phs_status) -> *const c_char {
    let name: &'static CStr = match status {
        PHS_OK => c"PHS_OK",
        PHS_E_NULL_ARGUMENT => c"PHS_E_NULL_ARGUMENT",
        PHS_E_INVALID_UTF8 => c"PHS_E_INVALID_UTF8",
        PHS_E_BUFFER_TOO_SMALL => c"PHS_E_BUFFER_TOO_SMALL",
        PHS_E_MALFORMED_DIGEST => c"PHS_E_MALFORMED_DIGEST",
        PHS_E_PASSWORD_TOO_LONG => c"PHS_E_PASSWORD_TOO_LONG",
        PHS_E_INVALID_ARGUMENT => c"PHS_E_INVALID_ARGUMENT",
        PHS_E_RANDOM => c"PHS_E_RANDOM",
        PHS_E_NOT_FOUND => c"PHS_E_NOT_FOUND",
        PHS_E_PASSWORD_POLICY => c"PHS_E_PASSWORD_POLICY",
        PHS_E_CONFLICT => c"PHS_E_CONFLICT",
        PHS_E_STORAGE => c"PHS_E_STORAGE",
        PHS_E_INVALID_PASSWORD => c"PHS_E_INVALID_PASSWORD",
        PHS_E_ACCESS_DENIED => c"PHS_E_ACCESS_DENIED",
        PHS_E_UNREACHABLE => c"PHS_E_UNREACHABLE",
        PHS_E_THROTTLED => c"PHS_E_THROTTLED",
        PHS_E_REMOTE => c"PHS_E_REMOTE",
        PHS_E_CONFIG => c"PHS_E_CONFIG",
        PHS_E_DIRECTORY => c"PHS_E_DIRECTORY",
        PHS_E_REPLICATION => c"PHS_E_REPLICATION",
        PHS_E_FIPS => c"PHS_E_FIPS",
        PHS_E_STATE => c"PHS_E_STATE",
        PHS_E_CANCELLED => c"PHS_E_CANCELLED",
        PHS_E_INTERNAL => c"PHS_E_INTERNAL",
        _ => c"PHS_E_UNKNOWN",
    };
    name.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> String {
        let mut buf = vec![0 as c_char; 256];
        // SAFETY: buf holds 256 bytes.
        unsafe { phs_last_error_message(buf.as_mut_ptr(), buf.len()) };
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let status: phs_status = ffi_boundary!({
            if std::hint::black_box(true) {
                panic!("boom in a test");
            }
            Ok(())
        });
        assert_eq!(status, PHS_E_INTERNAL);
        assert!(last_error().contains("boom in a test"));
    }

    #[test]
    fn errors_set_the_thread_message() {
        let status: phs_status = ffi_boundary!({ Err(FfiError::null("thing")) });
        assert_eq!(status, PHS_E_NULL_ARGUMENT);
        assert_eq!(last_error(), "argument `thing` is NULL");
        let ok: phs_status = ffi_boundary!({ Ok(()) });
        assert_eq!(ok, PHS_OK);
    }
}
