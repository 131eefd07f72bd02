//! C exports of the sync engine. Each handle owns its engine (and its async runtime); calls
//! block. Results are JSON with the field names of `phsync_engine` (see the README).

use std::ffi::{c_char, c_void, CString};
use std::path::Path;
use std::sync::atomic::Ordering;

use super::{ffi_boundary, phs_status, str_arg, write_json, FfiError};
use super::{PHS_E_INVALID_ARGUMENT, PHS_E_NOT_FOUND};
use phsync_engine::events::{read_configured_events, EventQuery};
use phsync_engine::{check_connection, Engine, SyncError};

/// A sync engine opened from a config file. Use from one thread at a time.
#[allow(non_camel_case_types)]
pub struct phs_engine {
    engine: Engine,
}

/// Progress of a cycle: `stage` ("scope", "replicate", "provision", "credentials"), items
/// `done` of `total` ("credentials" is reported once per user; "replicate" after every
/// replication batch with the accounts so far and `total` 0, not known yet). Called on the thread that
/// called `phs_sync_cycle`, never after it returns.
///
/// Return 0 to continue. Any nonzero value asks the engine to stop: it finishes what is in
/// flight (the current LDAP scope read, replication batch, or batch of at most 200
/// credentials, whose users are still reported) and `phs_sync_cycle` returns
/// `PHS_E_CANCELLED`. What was applied stays applied; the cursor is not advanced past it, so
/// the next cycle resumes.
#[allow(non_camel_case_types)]
pub type phs_progress_fn = Option<
    unsafe extern "C" fn(context: *mut c_void, stage: *const c_char, done: u64, total: u64) -> i32,
>;

/// `flags` bit for `phs_sync_cycle`: a full resync, ignoring the stored cursor.
pub const PHS_SYNC_FULL: u32 = 1;

/// The config file is missing, unreadable or invalid; the message names the key.
pub const PHS_E_CONFIG: phs_status = -20;
/// The domain controller's LDAP service failed (unreachable, credentials, TLS, scope).
pub const PHS_E_DIRECTORY: phs_status = -21;
/// Replication (MS-DRSR) failed: unreachable, credentials, missing rights, protocol.
pub const PHS_E_REPLICATION: phs_status = -22;
/// The host is in FIPS mode and `allow_non_fips_crypto` is not set.
pub const PHS_E_FIPS: phs_status = -23;
/// The engine's state directory or event log could not be used.
pub const PHS_E_STATE: phs_status = -24;
/// The caller stopped the cycle (progress callback returned nonzero); what was applied stays
/// applied, the cursor was not advanced past it, the next cycle resumes.
pub const PHS_E_CANCELLED: phs_status = -25;

impl From<SyncError> for FfiError {
    fn from(e: SyncError) -> Self {
        let status = match &e {
            SyncError::Config(_) | SyncError::Setup(_) => PHS_E_CONFIG,
            SyncError::Fips => PHS_E_FIPS,
            SyncError::Directory(_) => PHS_E_DIRECTORY,
            SyncError::Replication(_) => PHS_E_REPLICATION,
            SyncError::Interrupted => PHS_E_CANCELLED,
            SyncError::Tenant(c) => {
                return FfiError::new(FfiError::from_cloud_status(c), e.to_string())
            }
            SyncError::State(_) => PHS_E_STATE,
            SyncError::UserNotFound(_) => PHS_E_NOT_FOUND,
        };
        FfiError::new(status, e.to_string())
    }
}

/// Open an engine from a phsync config file (TOML).
///
/// # Safety
/// `config_path` must be NUL-terminated; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn phs_engine_open(
    config_path: *const c_char,
    out: *mut *mut phs_engine,
) -> phs_status {
    ffi_boundary!({
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        *out = std::ptr::null_mut();
        let path = str_arg(config_path, "config_path")?;
        let engine = Engine::open(Path::new(path))?;
        *out = Box::into_raw(Box::new(phs_engine { engine }));
        Ok(())
    })
}

/// Close an engine. NULL is a no-op.
///
/// # Safety
/// `engine` must be NULL or from `phs_engine_open`, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn phs_engine_free(engine: *mut phs_engine) {
    if !engine.is_null() {
        let _ =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(Box::from_raw(engine))));
    }
}

unsafe fn engine_mut<'a>(engine: *mut phs_engine) -> Result<&'a mut Engine, FfiError> {
    engine
        .as_mut()
        .map(|e| &mut e.engine)
        .ok_or_else(|| FfiError::null("engine"))
}

/// Run one cycle (`PHS_SYNC_FULL` for a full resync). `*out_json`: `mode`, `started_at`,
/// `finished_at`, `in_scope`, `changes`, `applied`, `stale`, `filtered`, `disabled`,
/// `failed`, `retry_queued`, `users` (per-user results), `ok`. Per-user failures are
/// `PHS_OK` with `"ok": false`; a DC or tenant outage is an error status. A nonzero return
/// from `progress` stops the cycle: `PHS_E_CANCELLED`, and no `*out_json` (see
/// `phs_sync_status` for what it did). A stop applies to this call only.
///
/// # Safety
/// `engine` from `phs_engine_open`; `progress` NULL or callable with `context`;
/// free `*out_json` with `phs_string_free`.
#[no_mangle]
pub unsafe extern "C" fn phs_sync_cycle(
    engine: *mut phs_engine,
    flags: u32,
    progress: phs_progress_fn,
    context: *mut c_void,
    out_json: *mut *mut c_char,
) -> phs_status {
    ffi_boundary!({
        let engine = engine_mut(engine)?;
        if out_json.is_null() {
            return Err(FfiError::null("out_json"));
        }
        if flags & !PHS_SYNC_FULL != 0 {
            return Err(FfiError::new(
                PHS_E_INVALID_ARGUMENT,
                format!("unknown flags 0x{flags:x}"),
            ));
        }
        let stop = engine.stop_flag();
        stop.store(false, Ordering::SeqCst);
        let mut report_progress = |stage: &str, done: u64, total: u64| {
            if let Some(f) = progress {
                let stage = CString::new(stage).unwrap_or_default();
                if f(context, stage.as_ptr(), done, total) != 0 {
                    stop.store(true, Ordering::SeqCst);
                }
            }
        };
        let report = engine.cycle(flags & PHS_SYNC_FULL != 0, &mut report_progress);
        // A stop is per call: none outlives it.
        engine.stop_flag().store(false, Ordering::SeqCst);
        write_json(&report?, out_json)
    })
}

/// Sync one user now (sAMAccountName, `DOMAIN\sam`, UPN, DN or GUID). `*out_json`: the
/// per-user result (`object_guid`, `sam_account_name`, `user_principal_name`,
/// `source_anchor`, `last_attempt_at`, `status`, `reason`, `onprem_changed_at`,
/// `applied_at`, `retry`). `PHS_E_NOT_FOUND` if the directory has no such user.
///
/// # Safety
/// As `phs_sync_cycle`.
#[no_mangle]
pub unsafe extern "C" fn phs_sync_user(
    engine: *mut phs_engine,
    user: *const c_char,
    out_json: *mut *mut c_char,
) -> phs_status {
    ffi_boundary!({
        let engine = engine_mut(engine)?;
        let user = str_arg(user, "user")?;
        if out_json.is_null() {
            return Err(FfiError::null("out_json"));
        }
        let result = engine.sync_user(user)?;
        write_json(&result, out_json)
    })
}

/// One user's diagnostics: the per-user result plus `history` (`at`, `status`, `reason`).
/// `PHS_E_NOT_FOUND` if the engine has no record of the user.
///
/// # Safety
/// As `phs_sync_cycle`.
#[no_mangle]
pub unsafe extern "C" fn phs_user_status(
    engine: *mut phs_engine,
    user: *const c_char,
    out_json: *mut *mut c_char,
) -> phs_status {
    ffi_boundary!({
        let engine = engine_mut(engine)?;
        let user = str_arg(user, "user")?;
        if out_json.is_null() {
            return Err(FfiError::null("out_json"));
        }
        let status = engine.user_status(user)?.ok_or_else(|| {
            FfiError::new(
                PHS_E_NOT_FOUND,
                format!("phsync has no record of {user:?} (not in scope, or never synced)"),
            )
        })?;
        write_json(&status, out_json)
    })
}

/// The engine's overall state: `{"last_cycle": {...} | null, "users": [per-user result, ...]}`.
/// `last_cycle` (null before the first cycle) is flat: `mode` ("full"/"incremental"),
/// `started_at`, `finished_at`, `ok`, `in_scope`, `changes`, `applied`, `stale`, `filtered`,
/// `disabled`, `failed`, `retry_queued`, `error` (null, a DC/tenant failure's message, or
/// "stopped by the caller"; counts are 0 after a failure, what was done after a stop).
///
/// # Safety
/// As `phs_sync_cycle`.
#[no_mangle]
pub unsafe extern "C" fn phs_sync_status(
    engine: *mut phs_engine,
    out_json: *mut *mut c_char,
) -> phs_status {
    ffi_boundary!({
        let engine = engine_mut(engine)?;
        if out_json.is_null() {
            return Err(FfiError::null("out_json"));
        }
        let status = serde_json::json!({
            "last_cycle": engine.last_cycle()?,
            "users": engine.all_user_status()?,
        });
        write_json(&status, out_json)
    })
}

/// Test every link a sync cycle needs, the way the engine does it, without opening an engine
/// and without writing to the directory or the tenant. `*out_json`:
/// `{"ok": bool, "checks": [{"name", "result", "detail"}, ...]}`, one check per name in this
/// order: "config", "fips", "dc_reachable", "ldap_bind", "drsr_bind", "replication_rights",
/// "tenant_reachable", "token_valid", "ca_trusted"; `result` is "passed", "failed" or
/// "skipped" (a failed check skips those that depend on it, naming it in `detail`); `ok` is
/// true when none failed. Failures are data: `PHS_OK` whenever the report was produced.
/// Blocks for up to a few timeouts. No detail holds a password, hash, digest or token.
///
/// # Safety
/// `config_path` NUL-terminated; free `*out_json` with `phs_string_free`.
#[no_mangle]
pub unsafe extern "C" fn phs_check_connection(
    config_path: *const c_char,
    out_json: *mut *mut c_char,
) -> phs_status {
    ffi_boundary!({
        if out_json.is_null() {
            return Err(FfiError::null("out_json"));
        }
        *out_json = std::ptr::null_mut();
        let path = str_arg(config_path, "config_path")?;
        write_json(&check_connection(Path::new(path)), out_json)
    })
}

/// Read the engine's event log (`events.jsonl` and its rotated files in the config's
/// `[state]` directory) without opening the engine or the tenant: only the config is parsed.
/// `ids`/`ids_len`: only these event IDs (NULL or 0: any); `after_unix_ms`: only events
/// strictly after this instant (`INT64_MIN`: no bound); `newest`: only the newest N after
/// filtering (0: all). `*out_json`: an array, oldest first, of
/// `{"at", "event_id", "level", "message", "data"}` (`data` null when the event has none).
/// No state directory or no log yet is `[]`; unreadable lines are skipped.
///
/// # Safety
/// `config_path` NUL-terminated; `ids` NULL or valid for `ids_len` reads; free `*out_json`
/// with `phs_string_free`.
#[no_mangle]
pub unsafe extern "C" fn phs_events(
    config_path: *const c_char,
    ids: *const u16,
    ids_len: usize,
    after_unix_ms: i64,
    newest: usize,
    out_json: *mut *mut c_char,
) -> phs_status {
    ffi_boundary!({
        if out_json.is_null() {
            return Err(FfiError::null("out_json"));
        }
        *out_json = std::ptr::null_mut();
        let path = str_arg(config_path, "config_path")?;
        let ids = if ids.is_null() || ids_len == 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(ids, ids_len).to_vec()
        };
        let query = EventQuery {
            ids,
            after_unix_ms: (after_unix_ms != i64::MIN).then_some(after_unix_ms),
            newest,
        };
        let events = read_configured_events(Path::new(path), &query)?;
        write_json(&events, out_json)
    })
}
