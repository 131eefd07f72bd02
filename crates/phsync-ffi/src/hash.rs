//! C exports of the hashing core.

use std::ffi::c_char;

use crate::error::phs_status;
use crate::ffi::{array_arg, ffi_boundary, opt_slice_arg, slice_arg, str_arg, Out};
use phsync_hash::{NtHash, PhsDigest, DEFAULT_ITERATIONS, NT_HASH_LEN, SALT_LEN};

/// NT hash (16 bytes) of a UTF-8 password of `len` bytes (no NUL needed). On error the 16
/// bytes of `out_hash` are zero.
///
/// # Safety
/// `password` must be valid for `len` reads, `out_hash` for 16 writes.
#[no_mangle]
pub unsafe extern "C" fn phs_nt_hash_utf8(
    password: *const c_char,
    len: usize,
    out_hash: *mut u8,
) -> phs_status {
    ffi_boundary!({
        // SAFETY: the caller guarantees `out_hash` is NULL or valid for 16 writes.
        let out = unsafe { Out::bytes(out_hash, NT_HASH_LEN, "out_hash") };
        // SAFETY: the caller guarantees `password` is NULL or valid for `len` reads.
        let pw = unsafe { slice_arg(password.cast::<u8>(), len, "password") }?;
        out.check()?;
        out.set_bytes(NtHash::from_utf8(pw)?.as_bytes())
    })
}

/// NT hash (16 bytes) of `len` UTF-16 code units; lone surrogates are hashed as they are.
/// On error the 16 bytes of `out_hash` are zero.
///
/// # Safety
/// `password` must be valid for `len` reads of `uint16_t`, `out_hash` for 16 writes.
#[no_mangle]
pub unsafe extern "C" fn phs_nt_hash_utf16(
    password: *const u16,
    len: usize,
    out_hash: *mut u8,
) -> phs_status {
    ffi_boundary!({
        // SAFETY: the caller guarantees `out_hash` is NULL or valid for 16 writes.
        let out = unsafe { Out::bytes(out_hash, NT_HASH_LEN, "out_hash") };
        // SAFETY: the caller guarantees `password` is NULL or valid for `len` reads.
        let pw = unsafe { slice_arg(password, len, "password") }?;
        out.check()?;
        out.set_bytes(NtHash::from_utf16(pw)?.as_bytes())
    })
}

/// Write the PHS digest string of a 16-byte NT hash, NUL-terminated, into `out`.
/// `salt`: 10 bytes, or NULL for a fresh random salt. `iterations`: 0 means 1000.
/// `PHS_DIGEST_STRING_CAPACITY` bytes are always enough. On error `out` is the empty
/// string (when `out_capacity` > 0).
///
/// # Safety
/// `nt_hash` must be valid for 16 reads, `salt` NULL or valid for 10 reads, `out` for
/// `out_capacity` writes.
#[no_mangle]
pub unsafe extern "C" fn phs_digest_from_nt_hash(
    nt_hash: *const u8,
    salt: *const u8,
    iterations: u32,
    out: *mut c_char,
    out_capacity: usize,
) -> phs_status {
    ffi_boundary!({
        // SAFETY: the caller guarantees `out` is NULL or valid for `out_capacity` writes.
        let out = unsafe { Out::c_string(out, out_capacity, "out") };
        // SAFETY: the caller guarantees `nt_hash` is NULL or valid for 16 reads.
        let nt = NtHash::from_bytes(*unsafe { array_arg::<NT_HASH_LEN>(nt_hash, "nt_hash") }?);
        out.check()?;
        let iterations = if iterations == 0 {
            DEFAULT_ITERATIONS
        } else {
            iterations
        };
        // SAFETY: the caller guarantees `salt` is NULL or valid for 10 reads.
        let salt: [u8; SALT_LEN] = match unsafe { opt_slice_arg(salt, SALT_LEN, "salt") }? {
            Some(salt) => salt.try_into().expect("SALT_LEN bytes"),
            None => phsync_hash::random_salt()?,
        };
        let digest = PhsDigest::from_nt_hash(&nt, salt, iterations)?;
        out.set_str(&digest.encode())
    })
}

/// Verify a UTF-8 password of `len` bytes against a NUL-terminated digest string.
/// A wrong password is `PHS_OK` with `*out_match == false`; on any error `*out_match` is
/// false too (when `out_match` is not NULL).
///
/// # Safety
/// `digest` must be NUL-terminated, `password` valid for `len` reads, `out_match` writable.
#[no_mangle]
pub unsafe extern "C" fn phs_verify_utf8(
    digest: *const c_char,
    password: *const c_char,
    len: usize,
    out_match: *mut bool,
) -> phs_status {
    ffi_boundary!({
        // SAFETY: the caller guarantees `out_match` is NULL or writable.
        let out = unsafe { Out::new(out_match, "out_match", false) };
        // SAFETY: the caller guarantees `digest` is NULL or NUL-terminated.
        let digest = unsafe { str_arg(digest, "digest") }?;
        // SAFETY: the caller guarantees `password` is NULL or valid for `len` reads.
        let pw = unsafe { slice_arg(password.cast::<u8>(), len, "password") }?;
        out.check()?;
        let parsed = PhsDigest::parse(digest)?;
        out.set(parsed.matches_nt_hash(&NtHash::from_utf8(pw)?))
    })
}

/// Verify `len` UTF-16 code units against a NUL-terminated digest string (lone surrogates
/// are hashed as they are, as for `phs_nt_hash_utf16`).
/// A wrong password is `PHS_OK` with `*out_match == false`; on any error `*out_match` is
/// false too (when `out_match` is not NULL).
///
/// # Safety
/// `digest` must be NUL-terminated, `password` valid for `len` reads, `out_match` writable.
#[no_mangle]
pub unsafe extern "C" fn phs_verify_utf16(
    digest: *const c_char,
    password: *const u16,
    len: usize,
    out_match: *mut bool,
) -> phs_status {
    ffi_boundary!({
        // SAFETY: the caller guarantees `out_match` is NULL or writable.
        let out = unsafe { Out::new(out_match, "out_match", false) };
        // SAFETY: the caller guarantees `digest` is NULL or NUL-terminated.
        let digest = unsafe { str_arg(digest, "digest") }?;
        // SAFETY: the caller guarantees `password` is NULL or valid for `len` reads.
        let pw = unsafe { slice_arg(password, len, "password") }?;
        out.check()?;
        let parsed = PhsDigest::parse(digest)?;
        out.set(parsed.matches_nt_hash(&NtHash::from_utf16(pw)?))
    })
}

/// Verify a 16-byte NT hash against a NUL-terminated digest string. A mismatch is `PHS_OK`
/// with `*out_match == false`; on any error `*out_match` is false too (when not NULL).
///
/// # Safety
/// `digest` must be NUL-terminated, `nt_hash` valid for 16 reads, `out_match` writable.
#[no_mangle]
pub unsafe extern "C" fn phs_verify_nt_hash(
    digest: *const c_char,
    nt_hash: *const u8,
    out_match: *mut bool,
) -> phs_status {
    ffi_boundary!({
        // SAFETY: the caller guarantees `out_match` is NULL or writable.
        let out = unsafe { Out::new(out_match, "out_match", false) };
        // SAFETY: the caller guarantees `digest` is NULL or NUL-terminated.
        let digest = unsafe { str_arg(digest, "digest") }?;
        // SAFETY: the caller guarantees `nt_hash` is NULL or valid for 16 reads.
        let nt = NtHash::from_bytes(*unsafe { array_arg::<NT_HASH_LEN>(nt_hash, "nt_hash") }?);
        out.check()?;
        let parsed = PhsDigest::parse(digest)?;
        out.set(parsed.matches_nt_hash(&nt))
    })
}
