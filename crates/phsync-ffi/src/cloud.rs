//! C exports of the cloud tenant. Results are JSON objects with the field names of
//! `phsync_tenant::model` (documented in the README).

use std::ffi::c_char;

use super::{
    bytes_arg, ffi_boundary, phs_status, str_arg, write_json, FfiError, PHS_E_INVALID_ARGUMENT,
};
use std::path::PathBuf;

use phsync_tenant::{self as cloud, CloudTenant, TenantTarget};

/// An open tenant. Safe to use from several threads at once; free with `phs_cloud_free`.
#[allow(non_camel_case_types)]
pub struct phs_cloud {
    tenant: Box<dyn CloudTenant>,
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
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        *out = std::ptr::null_mut();
        let target = str_arg(target, "target")?;
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
        *out = Box::into_raw(Box::new(phs_cloud { tenant }));
        Ok(())
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
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        *out = std::ptr::null_mut();
        let url = str_arg(url, "url")?;
        let token_file = PathBuf::from(str_arg(token_file, "token_file")?);
        let ca_file = if ca_file.is_null() {
            None
        } else {
            Some(PathBuf::from(str_arg(ca_file, "ca_file")?))
        };
        let t = TenantTarget {
            location: url.to_string(),
            token_file: Some(token_file),
            ca_file,
        };
        if !t.is_remote() {
            return Err(FfiError::new(
                PHS_E_INVALID_ARGUMENT,
                format!("{url:?} is not an https:// service URL; use phs_cloud_open for files"),
            ));
        }
        let tenant = cloud::open_target(&t, "c-api")?;
        *out = Box::into_raw(Box::new(phs_cloud { tenant }));
        Ok(())
    })
}

/// Close a tenant. NULL is a no-op.
///
/// # Safety
/// `cloud` must be NULL or from `phs_cloud_open`, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn phs_cloud_free(cloud: *mut phs_cloud) {
    if !cloud.is_null() {
        let _ =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(Box::from_raw(cloud))));
    }
}

unsafe fn tenant<'a>(cloud: *const phs_cloud) -> Result<&'a dyn CloudTenant, FfiError> {
    cloud
        .as_ref()
        .map(|c| c.tenant.as_ref())
        .ok_or_else(|| FfiError::null("cloud"))
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
        let tenant = tenant(cloud)?;
        let upn = str_arg(upn, "upn")?;
        let password = bytes_arg(password, len, "password")?;
        if out_json.is_null() {
            return Err(FfiError::null("out_json"));
        }
        if flags & !PHS_FORCE_CHANGE_AT_NEXT_SIGN_IN != 0 {
            return Err(FfiError::new(
                PHS_E_INVALID_ARGUMENT,
                format!("unknown flags 0x{flags:x}"),
            ));
        }
        let force = flags & PHS_FORCE_CHANGE_AT_NEXT_SIGN_IN != 0;
        let result = tenant.set_password(upn, password, force)?;
        write_json(&result, out_json)
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
        let tenant = tenant(cloud)?;
        let upn = str_arg(upn, "upn")?;
        let password = bytes_arg(password, len, "password")?;
        if out_json.is_null() {
            return Err(FfiError::null("out_json"));
        }
        let result = tenant.sign_in(upn, password)?;
        write_json(&result, out_json)
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
        let tenant = tenant(cloud)?;
        let upn = str_arg(upn, "upn")?;
        let old = bytes_arg(old_password, old_len, "old_password")?;
        let new = bytes_arg(new_password, new_len, "new_password")?;
        if out_json.is_null() {
            return Err(FfiError::null("out_json"));
        }
        let result = tenant.change_password(upn, old, new)?;
        write_json(&result, out_json)
    })
}

/// One user as JSON (`user_principal_name`, `source_anchor`, `display_name`, `enabled`,
/// `origin`, `created_at`, `password`, `locked_until`); `PHS_E_NOT_FOUND` if absent.
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
        let tenant = tenant(cloud)?;
        let upn = str_arg(upn, "upn")?;
        if out_json.is_null() {
            return Err(FfiError::null("out_json"));
        }
        let user = tenant
            .user(upn)?
            .ok_or_else(|| cloud::CloudError::UserNotFound(upn.to_string()))?;
        write_json(&user, out_json)
    })
}
