//! C exports of the sync engine. Each handle owns its engine (and its async runtime); calls
//! block. Results are JSON with the field names of `phsync_engine` (see the README).

use std::ffi::{c_char, c_void, CString};
use std::path::Path;
use std::sync::atomic::Ordering;

use crate::error::{phs_status, FfiError};
use crate::ffi::{ffi_boundary, opt_slice_arg, str_arg, try_box_from_ptr, try_mut_from_ptr, Out};
use phsync_engine::events::{read_configured_events, EventQuery};
use phsync_engine::{check_connection, Engine};

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
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let out = unsafe { Out::handle(out, "out") };
        out.check()?;
        // SAFETY: the caller guarantees `config_path` is NULL or NUL-terminated.
        let path = unsafe { str_arg(config_path, "config_path") }?;
        let engine = Engine::open(Path::new(path))?;
        out.set_box(phs_engine { engine })
    })
}

/// Close an engine. NULL is a no-op.
///
/// # Safety
/// `engine` must be NULL or from `phs_engine_open`, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn phs_engine_free(engine: *mut phs_engine) {
    ffi_boundary!(on_panic: (), {
        // SAFETY: the caller guarantees `engine` is NULL or a handle from `phs_engine_open`
        // (`Out::set_box`) that is not freed yet and no longer in use.
        drop(unsafe { try_box_from_ptr(engine) });
    })
}

/// Run one cycle (`PHS_SYNC_FULL` for a full resync). `*out_json`: `mode`, `started_at`,
/// `finished_at`, `in_scope`, `changes`, `applied`, `stale`, `filtered`, `disabled`,
/// `failed`, `retry_queued`, `users` (per-user results), `ok`, `timings` (milliseconds per
/// stage: `scope_ms`, `replicate_ms`, `provision_ms`, `digest_ms`, `tenant_ms`,
/// `state_ms`). Per-user failures are
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
        // SAFETY: the caller guarantees `out_json` is NULL or writable.
        let out = unsafe { Out::handle(out_json, "out_json") };
        let engine = &mut try_mut_from_ptr!(engine).engine;
        out.check()?;
        if flags & !PHS_SYNC_FULL != 0 {
            return Err(FfiError::invalid_argument(format!(
                "unknown flags 0x{flags:x}"
            )));
        }
        let stop = engine.stop_flag();
        stop.store(false, Ordering::SeqCst);
        let mut report_progress = |stage: &str, done: u64, total: u64| {
            if let Some(f) = progress {
                let stage = CString::new(stage).unwrap_or_default();
                // SAFETY: the caller guarantees `progress` may be called with `context`;
                // `stage` is a NUL-terminated string alive for the call.
                if unsafe { f(context, stage.as_ptr(), done, total) } != 0 {
                    stop.store(true, Ordering::SeqCst);
                }
            }
        };
        let report = engine.cycle(flags & PHS_SYNC_FULL != 0, &mut report_progress);
        // A stop is per call: none outlives it.
        engine.stop_flag().store(false, Ordering::SeqCst);
        out.set_json(&report?)
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
        // SAFETY: the caller guarantees `out_json` is NULL or writable.
        let out = unsafe { Out::handle(out_json, "out_json") };
        let engine = &mut try_mut_from_ptr!(engine).engine;
        // SAFETY: the caller guarantees `user` is NULL or NUL-terminated.
        let user = unsafe { str_arg(user, "user") }?;
        out.check()?;
        out.set_json(&engine.sync_user(user)?)
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
        // SAFETY: the caller guarantees `out_json` is NULL or writable.
        let out = unsafe { Out::handle(out_json, "out_json") };
        let engine = &mut try_mut_from_ptr!(engine).engine;
        // SAFETY: the caller guarantees `user` is NULL or NUL-terminated.
        let user = unsafe { str_arg(user, "user") }?;
        out.check()?;
        let status = engine.user_status(user)?.ok_or_else(|| {
            FfiError::new(
                phs_status::PHS_E_NOT_FOUND,
                format!("phsync has no record of {user:?} (not in scope, or never synced)"),
            )
        })?;
        out.set_json(&status)
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
        // SAFETY: the caller guarantees `out_json` is NULL or writable.
        let out = unsafe { Out::handle(out_json, "out_json") };
        let engine = &mut try_mut_from_ptr!(engine).engine;
        out.check()?;
        let status = serde_json::json!({
            "last_cycle": engine.last_cycle()?,
            "users": engine.all_user_status()?,
        });
        out.set_json(&status)
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
        // SAFETY: the caller guarantees `out_json` is NULL or writable.
        let out = unsafe { Out::handle(out_json, "out_json") };
        out.check()?;
        // SAFETY: the caller guarantees `config_path` is NULL or NUL-terminated.
        let path = unsafe { str_arg(config_path, "config_path") }?;
        out.set_json(&check_connection(Path::new(path)))
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
        // SAFETY: the caller guarantees `out_json` is NULL or writable.
        let out = unsafe { Out::handle(out_json, "out_json") };
        out.check()?;
        // SAFETY: the caller guarantees `config_path` is NULL or NUL-terminated.
        let path = unsafe { str_arg(config_path, "config_path") }?;
        // SAFETY: the caller guarantees `ids` is NULL or valid for `ids_len` reads.
        let ids = unsafe { opt_slice_arg(ids, ids_len, "ids") }?.unwrap_or_default();
        let query = EventQuery {
            ids: ids.to_vec(),
            after_unix_ms: (after_unix_ms != i64::MIN).then_some(after_unix_ms),
            newest,
        };
        out.set_json(&read_configured_events(Path::new(path), &query)?)
    })
}
