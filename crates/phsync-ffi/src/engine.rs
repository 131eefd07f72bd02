//! C exports of the sync engine. Each handle owns its engine (and its async runtime); calls
//! block. Results are JSON with the field names of `phsync_engine` (see the README).

use std::ffi::{c_char, c_void, CString};
use std::path::Path;
use std::ptr::{addr_of, addr_of_mut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{phs_status, FfiError};
use crate::ffi::{ffi_boundary, opt_slice_arg, str_arg, try_box_from_ptr, Out};
use phsync_engine::events::{read_configured_events, EventQuery};
use phsync_engine::{check_connection, Engine, RunHooks};

/// A sync engine opened from a config file.
///
/// Threads: the calls on one handle run one at a time (any thread, not concurrently), with
/// one exception: `phs_engine_stop` may be called from any thread (or a signal handler) while
/// another call on the handle runs, typically `phs_engine_run`. Nothing may run on the handle
/// during or after `phs_engine_free`.
#[allow(non_camel_case_types)]
pub struct phs_engine {
    /// Borrowed (`&mut`) by one call at a time, through this field alone ([`engine_mut`]):
    /// never a reference to the whole handle, which would alias `stop`.
    engine: Engine,
    /// The engine's stop flag (`Engine::stop_flag`), taken at open: the only field
    /// `phs_engine_stop` reads, so it never touches `engine` while a call holds it.
    stop: Arc<AtomicBool>,
}

/// `&mut` the engine of a handle argument, or `PHS_E_NULL_ARGUMENT` naming it. Borrows the
/// `engine` field only (through the raw pointer, no `&mut phs_engine`), so a concurrent
/// `phs_engine_stop` reading `stop` aliases nothing.
macro_rules! try_engine_from_ptr {
    ($ptr:ident) => {
        // SAFETY: every engine export requires in its `# Safety` section that the handle be
        // NULL or live (from `phs_engine_open`, not yet freed) and that the calls on it, other
        // than `phs_engine_stop`, run one at a time; NULL is checked.
        unsafe { engine_mut($ptr, stringify!($ptr)) }?
    };
}

/// See [`try_engine_from_ptr!`].
///
/// # Safety
/// `ptr` must be NULL or a live handle from `phs_engine_open` whose `engine` field is not
/// otherwise accessed during `'a`.
unsafe fn engine_mut<'a>(ptr: *mut phs_engine, name: &str) -> Result<&'a mut Engine, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::null(name));
    }
    // SAFETY: non-NULL and live (the caller's guarantee); `addr_of_mut!` projects to the field
    // without making a reference to the whole handle, and the field is not otherwise accessed.
    Ok(unsafe { &mut *addr_of_mut!((*ptr).engine) })
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
        let stop = engine.stop_flag();
        out.set_box(phs_engine { engine, stop })
    })
}

/// Close an engine. NULL is a no-op.
///
/// # Safety
/// `engine` must be NULL or from `phs_engine_open`, not yet freed, with no call on it running
/// (`phs_engine_stop` included).
#[no_mangle]
pub unsafe extern "C" fn phs_engine_free(engine: *mut phs_engine) {
    ffi_boundary!(on_panic: (), {
        // SAFETY: the caller guarantees `engine` is NULL or a handle from `phs_engine_open`
        // (`Out::set_box`) that is not freed yet and no longer in use.
        drop(unsafe { try_box_from_ptr(engine) });
    })
}

/// Run one cycle (`PHS_SYNC_FULL` for a full resync). `*out_json`: `mode`, `started_at`,
/// `finished_at`, `in_scope`, `scope_read` (`full`, or `changes`: only the scope's changes
/// were read), `changes`, `applied`, `stale`, `filtered`, `disabled`,
/// `failed`, `retry_queued`, `users` (per-user results), `ok`, `timings` (milliseconds per
/// stage: `scope_ms`, `replicate_ms`, `provision_ms`, `digest_ms`, `tenant_ms`,
/// `state_ms`). Per-user failures are
/// `PHS_OK` with `"ok": false`; a DC or tenant outage is an error status. A nonzero return
/// from `progress` stops the cycle: `PHS_E_CANCELLED`, and no `*out_json` (see
/// `phs_sync_status` for what it did). So does `phs_engine_stop` from another thread during
/// the call. A stop applies to this call only: one requested before the call is discarded.
///
/// # Safety
/// `engine` from `phs_engine_open`, no other call on it running but `phs_engine_stop`;
/// `progress` NULL or callable with `context`; free `*out_json` with `phs_string_free`.
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
        let engine = try_engine_from_ptr!(engine);
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

/// Run until stopped, as `phsync run` does: the first cycle, then, with
/// `[sync] notifications = true` (the default), change-driven sync from the DC's change
/// notifications (a changed password reaches the tenant within seconds) between periodic
/// cycles every `interval_seconds`. Blocks the calling thread until `phs_engine_stop`; then
/// returns `PHS_OK` after the user in flight (the current LDAP read, replication batch or
/// credential batch; as a stopped `phs_sync_cycle`, what was applied stays applied and the
/// cursor does not move past what was not). Cycle, DC and tenant failures while running are
/// not errors: they are logged (`phs_events`), stored (`phs_sync_status`) and retried; an error
/// status only if the run cannot start (`PHS_E_STATE`: the state store cannot be written).
/// Events 601 and 602 mark the start and the stop; 690, 691 and 692 the notifications.
///
/// A `phs_engine_stop` before this call is kept: the call then returns `PHS_OK` at once,
/// without a cycle. The stop is consumed when the call returns, so the handle can run again.
/// While it runs, only `phs_engine_stop` may be called on this handle; watch it with
/// `phs_sync_status` or `phs_events` through a second handle (or `phsync status`).
///
/// # Safety
/// `engine` NULL or from `phs_engine_open`, not yet freed, no other call on it running but
/// `phs_engine_stop`.
#[no_mangle]
pub unsafe extern "C" fn phs_engine_run(engine: *mut phs_engine) -> phs_status {
    ffi_boundary!({
        let engine = try_engine_from_ptr!(engine);
        let result = engine.run(RunHooks::default());
        // The stop that ended this run is consumed; a later one is for the next run.
        engine.stop_flag().store(false, Ordering::SeqCst);
        result?;
        Ok(())
    })
}

/// Ask a running `phs_engine_run` to return (`PHS_OK`, after the user in flight); a running
/// `phs_sync_cycle` ends with `PHS_E_CANCELLED`. With no call running, the stop is kept for
/// the next `phs_engine_run` (which then returns at once) and discarded by the next
/// `phs_sync_cycle`. Returns at once; does not wait for the run to end.
///
/// Callable from any thread, concurrently with any other call on the handle except
/// `phs_engine_free`: it only sets an atomic flag (the stop flag, kept beside the engine in the
/// handle), so with a valid handle it neither allocates nor locks and is async-signal-safe (a
/// SIGINT or SIGTERM handler may call it). NULL is `PHS_E_NULL_ARGUMENT` (that path stores the
/// thread's last error, which allocates).
///
/// # Safety
/// `engine` NULL or from `phs_engine_open`, not yet freed, and not freed during the call.
#[no_mangle]
pub unsafe extern "C" fn phs_engine_stop(engine: *const phs_engine) -> phs_status {
    ffi_boundary!({
        if engine.is_null() {
            return Err(FfiError::null("engine"));
        }
        // SAFETY: non-NULL and live (the caller's guarantee). Only the `stop` field is
        // borrowed, shared: no call makes a reference to it or to the whole handle (they
        // borrow the `engine` field alone), so this aliases no `&mut`; the flag is atomic.
        let stop: &Arc<AtomicBool> = unsafe { &*addr_of!((*engine).stop) };
        stop.store(true, Ordering::SeqCst);
        Ok(())
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
        let engine = try_engine_from_ptr!(engine);
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
        let engine = try_engine_from_ptr!(engine);
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

/// The engine's overall state:
/// `{"last_cycle": {...} | null, "notifications": {...} | null, "users": [per-user result, ...]}`.
/// `last_cycle` (null before the first cycle) is flat: `mode` ("full"/"incremental"),
/// `started_at`, `finished_at`, `ok`, `in_scope`, `changes`, `applied`, `stale`, `filtered`,
/// `disabled`, `failed`, `retry_queued`, `error` (null, a DC/tenant failure's message, or
/// "stopped by the caller"; counts are 0 after a failure, what was done after a stop).
/// `notifications` (null before the first `phs_engine_run` or `phsync run` on this state
/// directory) is the change notifications' state as the running (or last) run stored it:
/// `state` ("connecting", "connected", "lost", "unsupported", "disabled", "stopped"), `live`
/// (true while the notification search is open), `since` (when `state` last changed),
/// `last_notification_at` (null if none yet) and `detail` (the DC's URL when connected, why
/// not when lost or unsupported, else null). To watch a running `phs_engine_run`, call this
/// on a second handle opened on the same config (not on the running one).
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
        let engine = try_engine_from_ptr!(engine);
        out.check()?;
        let notifications = engine.notification_status()?.map(|n| {
            serde_json::json!({
                "state": n.state,
                "live": n.live,
                "since": n.since,
                "last_notification_at": n.last_notification_at,
                "detail": n.detail,
                "source": n.source,
                "pid": n.pid,
                "heartbeat_at": n.heartbeat_at,
                "stats": n.stats,
            })
        });
        let status = serde_json::json!({
            "last_cycle": engine.last_cycle()?,
            "notifications": notifications,
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
