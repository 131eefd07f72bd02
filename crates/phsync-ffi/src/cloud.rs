//! C exports of the cloud tenant. Results are JSON objects with the field names of
//! `phsync_tenant::model` (documented in the README).

use std::ffi::c_char;
use std::path::PathBuf;

use crate::error::{phs_status, FfiError};
use crate::ffi::{
    ffi_boundary, opt_str_arg, slice_arg, str_arg, try_box_from_ptr, try_ref_from_ptr, Out,
};

use phsync_tenant::{self as cloud, CloudTenant, TenantTarget};

/// An open tenant. Safe to use from several threads at once; free with `phs_cloud_free`.
#[allow(non_camel_case_types)]
pub struct phs_cloud {
    tenant: Box<dyn CloudTenant>,
}

impl phs_cloud {
    pub(crate) fn tenant(&self) -> &dyn CloudTenant {
        self.tenant.as_ref()
    }
}

/// `flags` bit for `phs_set_cloud_password`: the user must change it at next sign-in.
pub const PHS_FORCE_CHANGE_AT_NEXT_SIGN_IN: u32 = 1;

/// Open a tenant. `target`: a path to a tenant file (created on first use, mode 0600), a
/// `postgres://` URL, or the `https://` URL of `phsync cloud serve`; for the last, the token
/// file and CA file come from `PHSYNC_TOKEN_FILE` and `PHSYNC_CA_FILE` (or use
/// `phs_cloud_open_remote`).
///
/// # Safety
/// `target` must be NUL-terminated; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn phs_cloud_open(
    target: *const c_char,
    out: *mut *mut phs_cloud,
) -> phs_status {
    ffi_boundary!({
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let out = unsafe { Out::handle(out, "out") };
        out.check()?;
        // SAFETY: the caller guarantees `target` is NULL or NUL-terminated.
        let target = unsafe { str_arg(target, "target") }?;
        let env_path = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let mut t = TenantTarget::new(target);
        if t.is_remote() {
            t.token_file = env_path("PHSYNC_TOKEN_FILE");
            t.ca_file = env_path("PHSYNC_CA_FILE");
        }
        let tenant = cloud::open_target(&t, "c-api")?;
        out.set_box(phs_cloud { tenant })
    })
}

/// Open the tenant behind `phsync cloud serve` at `url` (`https://host:port`), with the API
/// token in `token_file` (mode 0600) and, if not NULL, the PEM CA certificate(s) to trust in
/// `ca_file`. Fails fast (`PHS_E_UNREACHABLE`, `PHS_E_ACCESS_DENIED`) if the service cannot
/// be reached or refuses the token.
///
/// # Safety
/// Strings NUL-terminated (`ca_file` may be NULL); `out` writable.
#[no_mangle]
pub unsafe extern "C" fn phs_cloud_open_remote(
    url: *const c_char,
    token_file: *const c_char,
    ca_file: *const c_char,
    out: *mut *mut phs_cloud,
) -> phs_status {
    ffi_boundary!({
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let out = unsafe { Out::handle(out, "out") };
        out.check()?;
        // SAFETY: the caller guarantees each string is NULL or NUL-terminated.
        let (url, token_file, ca_file) = unsafe {
            (
                str_arg(url, "url")?,
                str_arg(token_file, "token_file")?,
                opt_str_arg(ca_file, "ca_file")?,
            )
        };
        let t = TenantTarget {
            location: url.to_string(),
            token_file: Some(PathBuf::from(token_file)),
            ca_file: ca_file.map(PathBuf::from),
        };
        if !t.is_remote() {
            return Err(FfiError::invalid_argument(format!(
                "{url:?} is not an https:// service URL; use phs_cloud_open for files"
            )));
        }
        let tenant = cloud::open_target(&t, "c-api")?;
        out.set_box(phs_cloud { tenant })
    })
}

/// Close a tenant. NULL is a no-op.
///
/// # Safety
/// `cloud` must be NULL or from `phs_cloud_open`, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn phs_cloud_free(cloud: *mut phs_cloud) {
    ffi_boundary!(on_panic: (), {
        // SAFETY: the caller guarantees `cloud` is NULL or a handle from `phs_cloud_open*`
        // (`Out::set_box`) that is not freed yet and no longer in use.
        drop(unsafe { try_box_from_ptr(cloud) });
    })
}

/// Administrator password reset (cloud policy applies). `password`: `len` UTF-16 units.
/// `flags`: 0 or `PHS_FORCE_CHANGE_AT_NEXT_SIGN_IN`. On success `*out_json` is
/// `{"user_principal_name","result":"applied","changed_at","force_change_at_next_sign_in","password_expires_at"}`.
///
/// # Safety
/// Pointers valid as documented; free `*out_json` with `phs_string_free`.
#[no_mangle]
pub unsafe extern "C" fn phs_set_cloud_password(
    cloud: *mut phs_cloud,
    upn: *const c_char,
    password: *const u16,
    len: usize,
    flags: u32,
    out_json: *mut *mut c_char,
) -> phs_status {
    ffi_boundary!({
        // SAFETY: the caller guarantees `out_json` is NULL or writable.
        let out = unsafe { Out::handle(out_json, "out_json") };
        let cloud: &phs_cloud = try_ref_from_ptr!(cloud);
        // SAFETY: the caller guarantees `upn` is NULL or NUL-terminated.
        let upn = unsafe { str_arg(upn, "upn") }?;
        // SAFETY: the caller guarantees `password` is NULL or valid for `len` reads.
        let password = unsafe { slice_arg(password, len, "password") }?;
        out.check()?;
        if flags & !PHS_FORCE_CHANGE_AT_NEXT_SIGN_IN != 0 {
            return Err(FfiError::invalid_argument(format!(
                "unknown flags 0x{flags:x}"
            )));
        }
        let force = flags & PHS_FORCE_CHANGE_AT_NEXT_SIGN_IN != 0;
        out.set_json(&cloud.tenant.set_password(upn, password, force)?)
    })
}

/// Sign in. A refusal is `PHS_OK` too: read `"result"` in `*out_json`
/// (`success`, `invalid_credentials`, `must_change_password`, `password_expired`,
/// `account_disabled`, `locked_out`); `"session_token"` is set on success.
///
/// # Safety
/// Pointers valid as documented; free `*out_json` with `phs_string_free`.
#[no_mangle]
pub unsafe extern "C" fn phs_cloud_sign_in(
    cloud: *mut phs_cloud,
    upn: *const c_char,
    password: *const u16,
    len: usize,
    out_json: *mut *mut c_char,
) -> phs_status {
    ffi_boundary!({
        // SAFETY: the caller guarantees `out_json` is NULL or writable.
        let out = unsafe { Out::handle(out_json, "out_json") };
        let cloud: &phs_cloud = try_ref_from_ptr!(cloud);
        // SAFETY: the caller guarantees `upn` is NULL or NUL-terminated.
        let upn = unsafe { str_arg(upn, "upn") }?;
        // SAFETY: the caller guarantees `password` is NULL or valid for `len` reads.
        let password = unsafe { slice_arg(password, len, "password") }?;
        out.check()?;
        out.set_json(&cloud.tenant.sign_in(upn, password)?)
    })
}

/// A user's own password change (old and new as UTF-16). Result JSON as for sign-in;
/// `"result":"success"` means the password was changed.
///
/// # Safety
/// Pointers valid as documented; free `*out_json` with `phs_string_free`.
#[no_mangle]
pub unsafe extern "C" fn phs_cloud_change_password(
    cloud: *mut phs_cloud,
    upn: *const c_char,
    old_password: *const u16,
    old_len: usize,
    new_password: *const u16,
    new_len: usize,
    out_json: *mut *mut c_char,
) -> phs_status {
    ffi_boundary!({
        // SAFETY: the caller guarantees `out_json` is NULL or writable.
        let out = unsafe { Out::handle(out_json, "out_json") };
        let cloud: &phs_cloud = try_ref_from_ptr!(cloud);
        // SAFETY: the caller guarantees `upn` is NULL or NUL-terminated and each password
        // NULL or valid for its length in reads.
        let (upn, old, new) = unsafe {
            (
                str_arg(upn, "upn")?,
                slice_arg(old_password, old_len, "old_password")?,
                slice_arg(new_password, new_len, "new_password")?,
            )
        };
        out.check()?;
        out.set_json(&cloud.tenant.change_password(upn, old, new)?)
    })
}

/// One user as JSON (`user_principal_name`, `source_anchor`, `display_name`, `enabled`,
/// `origin`, `created_at`, `password`, `locked_until`, `risks`: `[{"kind","detected_at",
/// "breach_count"}]`); `PHS_E_NOT_FOUND` if absent.
///
/// # Safety
/// Pointers valid as documented; free `*out_json` with `phs_string_free`.
#[no_mangle]
pub unsafe extern "C" fn phs_cloud_user(
    cloud: *mut phs_cloud,
    upn: *const c_char,
    out_json: *mut *mut c_char,
) -> phs_status {
    ffi_boundary!({
        // SAFETY: the caller guarantees `out_json` is NULL or writable.
        let out = unsafe { Out::handle(out_json, "out_json") };
        let cloud: &phs_cloud = try_ref_from_ptr!(cloud);
        // SAFETY: the caller guarantees `upn` is NULL or NUL-terminated.
        let upn = unsafe { str_arg(upn, "upn") }?;
        out.check()?;
        let user = cloud
            .tenant
            .user(upn)?
            .ok_or_else(|| phsync_tenant::CloudError::UserNotFound(upn.to_string()))?;
        out.set_json(&user)
    })
}

/// End every sign-in session of a user now (administrators; e.g. a stolen session token or a
/// departing user). On success `*out_json` is `{"user_principal_name","revoked"}`: the UPN as
/// given and how many sessions were open (0 is a success). `PHS_E_NOT_FOUND` if the user is
/// absent, `PHS_E_INVALID_ARGUMENT` for a malformed UPN.
///
/// # Safety
/// Pointers valid as documented; free `*out_json` with `phs_string_free`.
#[no_mangle]
pub unsafe extern "C" fn phs_cloud_revoke_sessions(
    cloud: *mut phs_cloud,
    upn: *const c_char,
    out_json: *mut *mut c_char,
) -> phs_status {
    ffi_boundary!({
        // SAFETY: the caller guarantees `out_json` is NULL or writable.
        let out = unsafe { Out::handle(out_json, "out_json") };
        let cloud: &phs_cloud = try_ref_from_ptr!(cloud);
        // SAFETY: the caller guarantees `upn` is NULL or NUL-terminated.
        let upn = unsafe { str_arg(upn, "upn") }?;
        out.check()?;
        let revoked = cloud.tenant.revoke_sessions(upn)?;
        out.set_json(&serde_json::json!({
            "user_principal_name": upn,
            "revoked": revoked,
        }))
    })
}
