//! The phsync C ABI: the library `libphsync` (cdylib, staticlib) and its header
//! `include/phsync.h`, generated from this crate by cbindgen. It is a thin layer over the
//! safe Rust crates; the PowerShell module and C programs call it. `PHS_ABI_VERSION` is
//! bumped on any incompatible change.
//!
//! - **Status codes.** Every fallible export returns a [`phs_status`]: `PHS_OK` (0) or a
//!   negative `PHS_E_*` code (an `int32_t` in C). The enum is the one list of codes;
//!   `phs_status_name` derives from it. Rust errors become statuses in one place,
//!   `error.rs` (cloud errors by their `ErrorKind`).
//! - **Last error.** A failing call stores a message (never a secret) for the calling
//!   thread; `phs_last_error_message` copies it. It is kept until the next failure.
//! - **Panic boundary.** Every export, `*_free` included, runs inside `ffi_boundary!`: a
//!   panic becomes `PHS_E_INTERNAL` with a message instead of unwinding into (and, since
//!   Rust 1.81, aborting) the host process.
//! - **Outputs.** Out-parameters are written first (NULL, false, zeros, empty string), so
//!   they are defined on every path; `*out_match` is false after any error.
//! - **Ownership.** Handles (`phs_cloud`, `phs_engine`) are freed with their `*_free`;
//!   strings phsync returns (`*out_json`) with `phs_string_free`. NULL is a no-op for both.
//!   Arguments are only borrowed for the duration of the call.
//!
//! Pointer and argument helpers live in `ffi.rs`; every `unsafe` block says why it holds.

#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::{c_char, CString};

mod audit;
mod cloud;
mod engine;
mod error;
mod ffi;
mod hash;
mod risk;

pub use audit::*;
pub use cloud::*;
pub use engine::*;
pub use error::phs_status;
pub use error::phs_status::*;
pub use hash::*;
pub use risk::*;

use error::with_last_error;
use ffi::ffi_boundary;

/// Bumped on any incompatible change to the C ABI.
pub const PHS_ABI_VERSION: u32 = 2;

/// Enough bytes for any digest string plus its NUL terminator.
pub const PHS_DIGEST_STRING_CAPACITY: usize = 128;
/// Bytes in an NT hash.
pub const PHS_NT_HASH_LEN: usize = 16;
/// Bytes in a digest salt.
pub const PHS_SALT_LEN: usize = 10;

/// Free a string phsync returned (`out_json` results). NULL is a no-op.
///
/// # Safety
/// `s` must be NULL or a string from phsync not yet freed.
#[no_mangle]
pub unsafe extern "C" fn phs_string_free(s: *mut c_char) {
    ffi_boundary!(on_panic: (), {
        if !s.is_null() {
            // SAFETY: non-NULL, and the caller guarantees it is a string phsync made with
            // `CString::into_raw` (`Out::set_json`) and has not freed.
            drop(unsafe { CString::from_raw(s) });
        }
    })
}

/// Version of the C ABI this library implements (`PHS_ABI_VERSION`).
#[no_mangle]
pub extern "C" fn phs_abi_version() -> u32 {
    ffi_boundary!(on_panic: PHS_ABI_VERSION, { PHS_ABI_VERSION })
}

/// Copy the message of the last failure on this thread into `buf` (NUL-terminated,
/// truncated to `capacity` at a character boundary, so a short buffer still holds valid
/// UTF-8). Returns the buffer size the whole message needs, NUL included;
/// call with `buf` NULL or `capacity` 0 to ask. Messages never contain secrets.
///
/// # Safety
/// `buf` must be NULL or valid for `capacity` writes.
#[no_mangle]
pub unsafe extern "C" fn phs_last_error_message(buf: *mut c_char, capacity: usize) -> usize {
    ffi_boundary!(on_panic: 1, {
        with_last_error(|bytes| {
            if !buf.is_null() && capacity > 0 {
                let mut n = bytes.len().min(capacity - 1);
                // Back off to the first byte of a UTF-8 sequence (never a 10xxxxxx byte).
                while n < bytes.len() && n > 0 && bytes[n] & 0xC0 == 0x80 {
                    n -= 1;
                }
                // SAFETY: `buf` is non-NULL and the caller guarantees `capacity` writable
                // bytes; n + 1 <= capacity; the message is ours and cannot overlap `buf`.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), n);
                    buf.add(n).write(0);
                }
            }
            bytes.len() + 1
        })
    })
}

/// A static, NUL-terminated name for a status code ("PHS_OK", "PHS_E_NULL_ARGUMENT", ...;
/// "PHS_E_UNKNOWN" for a value that is not a status). Takes any integer.
#[no_mangle]
pub extern "C" fn phs_status_name(status: i32) -> *const c_char {
    ffi_boundary!(on_panic: c"PHS_E_UNKNOWN".as_ptr(), {
        match phs_status::from_raw(status) {
            Some(status) => status.name().as_ptr(),
            None => c"PHS_E_UNKNOWN".as_ptr(),
        }
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;
    use crate::error::FfiError;

    fn last_error() -> String {
        let mut buf = vec![0 as c_char; 256];
        // SAFETY: buf holds 256 bytes.
        unsafe { phs_last_error_message(buf.as_mut_ptr(), buf.len()) };
        // SAFETY: phs_last_error_message NUL-terminated it within its 256 bytes.
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    fn name_of(status: i32) -> String {
        // SAFETY: phs_status_name returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(phs_status_name(status)) }
            .to_str()
            .unwrap()
            .to_owned()
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
    fn a_panic_in_a_value_export_gives_its_default() {
        let value: usize = ffi_boundary!(on_panic: 7, {
            if std::hint::black_box(true) {
                panic!("boom in a value export");
            }
            1
        });
        assert_eq!(value, 7);
        assert!(last_error().contains("boom in a value export"));
    }

    #[test]
    fn errors_set_the_thread_message() {
        let status: phs_status = ffi_boundary!({ Err(FfiError::null("thing")) });
        assert_eq!(status, PHS_E_NULL_ARGUMENT);
        assert_eq!(last_error(), "argument `thing` is NULL");
        let ok: phs_status = ffi_boundary!({ Ok(()) });
        assert_eq!(ok, PHS_OK);
    }

    /// The values are the ABI: the PowerShell module and C programs hold them.
    #[test]
    fn status_values_and_names_are_the_published_ones() {
        let published: &[(&str, i32)] = &[
            ("PHS_OK", 0),
            ("PHS_E_NULL_ARGUMENT", -1),
            ("PHS_E_INVALID_UTF8", -2),
            ("PHS_E_BUFFER_TOO_SMALL", -3),
            ("PHS_E_MALFORMED_DIGEST", -4),
            ("PHS_E_PASSWORD_TOO_LONG", -5),
            ("PHS_E_INVALID_ARGUMENT", -6),
            ("PHS_E_RANDOM", -7),
            ("PHS_E_NOT_FOUND", -10),
            ("PHS_E_PASSWORD_POLICY", -11),
            ("PHS_E_CONFLICT", -12),
            ("PHS_E_STORAGE", -13),
            ("PHS_E_INVALID_PASSWORD", -14),
            ("PHS_E_ACCESS_DENIED", -15),
            ("PHS_E_UNREACHABLE", -16),
            ("PHS_E_THROTTLED", -17),
            ("PHS_E_REMOTE", -18),
            ("PHS_E_CONFIG", -20),
            ("PHS_E_DIRECTORY", -21),
            ("PHS_E_REPLICATION", -22),
            ("PHS_E_FIPS", -23),
            ("PHS_E_STATE", -24),
            ("PHS_E_CANCELLED", -25),
            ("PHS_E_INTERNAL", -99),
        ];
        assert_eq!(phs_status::ALL.len(), published.len());
        for (status, (name, value)) in phs_status::ALL.iter().zip(published) {
            assert_eq!(*status as i32, *value, "{name}");
            assert_eq!(status.name().to_str().unwrap(), *name);
            assert_eq!(name_of(*value), *name);
            assert_eq!(phs_status::from_raw(*value), Some(*status));
        }
        for unknown in [1, -8, -19, -26, -98, -100, i32::MIN, i32::MAX] {
            assert_eq!(name_of(unknown), "PHS_E_UNKNOWN");
            assert_eq!(phs_status::from_raw(unknown), None);
        }
        assert_eq!(std::mem::size_of::<phs_status>(), 4);
    }
}
