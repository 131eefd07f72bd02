//! What a cycle reports: the per-cycle report returned to callers, and the flat record of
//! the last cycle kept in the state store for `phsync status`.

use serde::{Deserialize, Serialize};

use crate::state::{HistoryEntry, UserDiagnostics};
use phsync_tenant::Timestamp;

#[derive(Debug, Clone, Serialize)]
pub struct CycleReport {
    pub mode: &'static str,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub in_scope: u64,
    /// How the scope was read: "full" (every user) or "changes" (the directory's change
    /// tracking since the last cycle); empty when the cycle did not get that far.
    pub scope_read: &'static str,
    /// Password changes replicated for in-scope users (plus retries and new users).
    pub changes: u64,
    pub applied: u64,
    pub stale: u64,
    pub filtered: u64,
    pub disabled: u64,
    pub failed: u64,
    pub retry_queued: u64,
    pub users: Vec<UserDiagnostics>,
    pub ok: bool,
    /// Where the cycle's time went, stage by stage.
    pub timings: StageTimings,
}

/// Wall time of each stage of a cycle, in milliseconds. A cycle's cost should grow with
/// the users it touches; these show which stage does not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StageTimings {
    /// Reading the scope from the directory (LDAP).
    pub scope_ms: u64,
    /// Replication from the DC (GetNCChanges), and single-user fetches.
    pub replicate_ms: u64,
    /// Creating, updating and disabling the tenant's users.
    pub provision_ms: u64,
    /// Computing the PHS digests.
    pub digest_ms: u64,
    /// Writing credentials to the tenant.
    pub tenant_ms: u64,
    /// Writing the engine's state (diagnostics, retry queue, cursor).
    pub state_ms: u64,
}

/// Milliseconds since `start`, to add to a [`StageTimings`] field.
pub(crate) fn ms_since(start: std::time::Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl CycleReport {
    pub(crate) fn new(mode: &'static str, started_at: Timestamp, in_scope: u64) -> Self {
        CycleReport {
            mode,
            started_at,
            finished_at: started_at,
            in_scope,
            scope_read: "",
            changes: 0,
            applied: 0,
            stale: 0,
            filtered: 0,
            disabled: 0,
            failed: 0,
            retry_queued: 0,
            users: Vec::new(),
            ok: true,
            timings: StageTimings::default(),
        }
    }
}

/// What the engine remembers of its last cycle (`phsync status`, `phs_sync_status`): one
/// flat record, written when a cycle finishes, fails or is stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastCycle {
    /// "full" or "incremental".
    pub mode: String,
    /// `None` only when read from the first stored form, which had no start time.
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    /// The cycle completed and no user failed.
    pub ok: bool,
    pub in_scope: u64,
    pub changes: u64,
    pub applied: u64,
    pub stale: u64,
    pub filtered: u64,
    pub disabled: u64,
    pub failed: u64,
    pub retry_queued: u64,
    /// Why the cycle did not complete: a domain-level failure, or [`STOPPED_BY_CALLER`].
    pub error: Option<String>,
}

/// `LastCycle::error` of a cycle stopped through the stop flag (a signal, a progress callback).
pub const STOPPED_BY_CALLER: &str = "stopped by the caller";

impl LastCycle {
    pub(crate) fn from_report(r: &CycleReport, ok: bool, error: Option<String>) -> Self {
        LastCycle {
            mode: r.mode.to_string(),
            started_at: Some(r.started_at),
            finished_at: r.finished_at,
            ok,
            in_scope: r.in_scope,
            changes: r.changes,
            applied: r.applied,
            stale: r.stale,
            filtered: r.filtered,
            disabled: r.disabled,
            failed: r.failed,
            retry_queued: r.retry_queued,
            error,
        }
    }

    /// A stored record: the current flat form, or the first one
    /// (`{"finished_at": .., "summary": {"mode": .., "in_scope": .., ...}}`).
    pub(crate) fn parse_stored(text: &str) -> Option<LastCycle> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        if let Some(summary) = value.get("summary") {
            let n = |key: &str| summary.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
            let failed = n("failed");
            return Some(LastCycle {
                mode: summary.get("mode")?.as_str()?.to_string(),
                started_at: None,
                finished_at: serde_json::from_value(value.get("finished_at")?.clone()).ok()?,
                // The first form was written only by completed cycles, whose report said
                // ok = no user failed.
                ok: failed == 0,
                in_scope: n("in_scope"),
                changes: n("changes"),
                applied: n("applied"),
                stale: n("stale"),
                filtered: n("filtered"),
                disabled: n("disabled"),
                failed,
                retry_queued: n("retry_queued"),
                error: None,
            });
        }
        serde_json::from_value(value).ok()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct UserStatus {
    #[serde(flatten)]
    pub user: UserDiagnostics,
    pub history: Vec<HistoryEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_cycle_is_read_in_both_stored_forms() {
        let old = r#"{"finished_at":"2025-03-01T10:00:00Z","summary":{"mode":"incremental","in_scope":5,"changes":2,"applied":1,"stale":0,"filtered":0,"disabled":0,"failed":1,"retry_queued":1}}"#;
        let l = LastCycle::parse_stored(old).unwrap();
        assert_eq!(l.mode, "incremental");
        assert_eq!(l.started_at, None);
        assert_eq!(
            l.finished_at,
            Timestamp::parse_rfc3339("2025-03-01T10:00:00Z").unwrap()
        );
        assert_eq!((l.in_scope, l.changes, l.applied), (5, 2, 1));
        assert_eq!((l.failed, l.retry_queued), (1, 1));
        assert!(!l.ok);
        assert_eq!(l.error, None);

        let mut r = CycleReport::new(
            "full",
            Timestamp::parse_rfc3339("2025-03-01T09:59:00Z").unwrap(),
            3,
        );
        r.applied = 3;
        let new = LastCycle::from_report(&r, true, None);
        let text = serde_json::to_string(&new).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys.len(),
            13,
            "mode, started_at, finished_at, ok, 8 counts, error: {keys:?}"
        );
        assert!(value["error"].is_null());
        assert_eq!(LastCycle::parse_stored(&text).unwrap(), new);
        assert_eq!(LastCycle::parse_stored("not json"), None);
    }
}
