//! C exports of the hashing core.

use std::ffi::c_char;

use super::{bytes_arg, ffi_boundary, phs_status, str_arg, write_c_string, FfiError};
use phsync_hash::{NtHash, PhsDigest, DEFAULT_ITERATIONS, NT_HASH_LEN, SALT_LEN};

/// NT hash (16 bytes) of a UTF-8 password of `len` bytes (no NUL needed).
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
        let pw = bytes_arg(password.cast::<u8>(), len, "password")?;
        if out_hash.is_null() {
            return Err(FfiError::null("out_hash"));
        }
        let nt = NtHash::from_utf8(pw)?;
        std::ptr::copy_nonoverlapping(nt.as_bytes().as_ptr(), out_hash, NT_HASH_LEN);
        Ok(())
    })
}

/// NT hash (16 bytes) of `len` UTF-16 code units; lone surrogates are hashed as they are.
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
        let pw = bytes_arg(password, len, "password")?;
        if out_hash.is_null() {
            return Err(FfiError::null("out_hash"));
        }
        let nt = NtHash::from_utf16(pw)?;
        std::ptr::copy_nonoverlapping(nt.as_bytes().as_ptr(), out_hash, NT_HASH_LEN);
        Ok(())
    })
}

/// Write the PHS digest string of a 16-byte NT hash, NUL-terminated, into `out`.
/// `salt`: 10 bytes, or NULL for a fresh random salt. `iterations`: 0 means 1000.
/// `PHS_DIGEST_STRING_CAPACITY` bytes are always enough.
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
        let nt_bytes = bytes_arg(nt_hash, NT_HASH_LEN, "nt_hash")?;
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        let nt = NtHash::from_bytes(nt_bytes.try_into().expect("length checked"));
        let iterations = if iterations == 0 {
            DEFAULT_ITERATIONS
        } else {
            iterations
        };
        let salt: [u8; SALT_LEN] = if salt.is_null() {
            phsync_hash::random_salt()?
        } else {
            std::slice::from_raw_parts(salt, SALT_LEN)
                .try_into()
                .expect("length checked")
        };
        let digest = PhsDigest::from_nt_hash(&nt, salt, iterations)?;
        write_c_string(&digest.encode(), out, out_capacity)
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
        // Every error leaves "no match" behind, whatever the caller pre-set.
        if !out_match.is_null() {
            *out_match = false;
        }
        let digest = str_arg(digest, "digest")?;
        let pw = bytes_arg(password.cast::<u8>(), len, "password")?;
        if out_match.is_null() {
            return Err(FfiError::null("out_match"));
        }
        let parsed = PhsDigest::parse(digest).map_err(phsync_hash::HashError::from)?;
        let matched = parsed.matches_nt_hash(&NtHash::from_utf8(pw)?);
        *out_match = matched;
        Ok(())
    })
}

/// Verify `len` UTF-16 code units against a NUL-terminated digest string.
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
        // Every error leaves "no match" behind, whatever the caller pre-set.
        if !out_match.is_null() {
            *out_match = false;
        }
        let digest = str_arg(digest, "digest")?;
        let pw = bytes_arg(password, len, "password")?;
        if out_match.is_null() {
            return Err(FfiError::null("out_match"));
        }
        let parsed = PhsDigest::parse(digest).map_err(phsync_hash::HashError::from)?;
        let matched = parsed.matches_nt_hash(&NtHash::from_utf16(pw)?);
        *out_match = matched;
        Ok(())
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
        // Every error leaves "no match" behind, whatever the caller pre-set.
        if !out_match.is_null() {
            *out_match = false;
        }
        let digest = str_arg(digest, "digest")?;
        let nt_bytes = bytes_arg(nt_hash, NT_HASH_LEN, "nt_hash")?;
        if out_match.is_null() {
            return Err(FfiError::null("out_match"));
        }
        let nt = NtHash::from_bytes(nt_bytes.try_into().expect("length checked"));
        let parsed = PhsDigest::parse(digest).map_err(phsync_hash::HashError::from)?;
        *out_match = parsed.matches_nt_hash(&nt);
        Ok(())
    })
}
