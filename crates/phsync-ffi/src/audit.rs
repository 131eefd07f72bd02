//! C export of the password-quality audit (`phsync_engine::audit`).

use std::ffi::c_char;
use std::path::{Path, PathBuf};

use crate::error::{phs_status, FfiError};
use crate::ffi::{ffi_boundary, opt_str_arg, str_arg, Out};
use phsync_engine::audit::{AuditOptions, AuditRunError};
use phsync_engine::Settings;

impl From<AuditRunError> for FfiError {
    fn from(e: AuditRunError) -> Self {
        match e {
            AuditRunError::Sync(s) => s.into(),
            // A path argument that names an unusable file: missing, unreadable, unsorted,
            // malformed (the message says which and where, by byte offset, never the line).
            AuditRunError::List(l) => FfiError::invalid_argument(l.to_string()),
        }
    }
}

/// Audit password quality the way `phsync audit` does, without opening an engine and
/// without writing anything (directory, tenant or state). `leaked_hashes_path`: NULL, or
/// Have I Been Pwned's "NTLM ordered by hash" file (`HASH:COUNT` lines) or any sorted list of
/// NT hashes, looked up in place. `weak_passwords_path`: NULL, or a UTF-8 text file of
/// passwords, one per line. `all_accounts`: every user and computer account of the domain
/// instead of the users in the sync scope.
///
/// `*out_json`: `{"scope", "accounts_audited", "accounts_with_findings", "replication_ms",
/// "analysis_ms", "weak_passwords"?, "weak_lines_skipped"?, "findings": [{"finding", "title",
/// "checked", "count", "groups"?, "accounts": [{"sam_account_name", "user_principal_name",
/// "distinguished_name", "enabled", "computer", "group"?, "breach_count"?, "findings"?}]}]}`,
/// one finding per id in this order: "empty_password", "weak_password", "leaked_password",
/// "shared_password", "default_computer_password", "lm_hash_present",
/// "password_not_required", "reversible_encryption", "aes_keys_missing",
/// "password_never_expires", "admin_with_finding". The report never holds a hash.
/// An unusable list is `PHS_E_INVALID_ARGUMENT`; config, LDAP and replication failures are
/// `PHS_E_CONFIG`, `PHS_E_DIRECTORY`, `PHS_E_REPLICATION`.
///
/// # Safety
/// `config_path` NUL-terminated; the list paths NULL or NUL-terminated; free `*out_json`
/// with `phs_string_free`.
#[no_mangle]
pub unsafe extern "C" fn phs_audit(
    config_path: *const c_char,
    leaked_hashes_path: *const c_char,
    weak_passwords_path: *const c_char,
    all_accounts: bool,
    out_json: *mut *mut c_char,
) -> phs_status {
    ffi_boundary!({
        // SAFETY: the caller guarantees `out_json` is NULL or writable.
        let out = unsafe { Out::handle(out_json, "out_json") };
        out.check()?;
        // SAFETY: the caller guarantees each path is NULL (optional ones) or NUL-terminated.
        let config = unsafe { str_arg(config_path, "config_path") }?;
        // SAFETY: as above.
        let leaked = unsafe { opt_str_arg(leaked_hashes_path, "leaked_hashes_path") }?;
        // SAFETY: as above.
        let weak = unsafe { opt_str_arg(weak_passwords_path, "weak_passwords_path") }?;
        let settings = Settings::load(Path::new(config))
            .map_err(|e| FfiError::from(phsync_engine::SyncError::from(e)))?;
        let options = AuditOptions {
            all_accounts,
            leaked_hashes: leaked.map(PathBuf::from),
            weak_passwords: weak.map(PathBuf::from),
        };
        let run = phsync_engine::audit::run(&settings, &options)?;
        out.set_json(&run)
    })
}
