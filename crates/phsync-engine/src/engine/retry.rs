//! Stage 4, retry: which users get a password this cycle (the changes replicated, plus new
//! or back-in-scope users and due retries, fetched one by one), and how each outcome is
//! recorded: diagnostics, history, and the retry queue with its backoff.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use serde_json::json;

use phsync_directory::{DirectoryUser, Guid};
use phsync_drsr::{FileTime, ReplicatedAccount};
use phsync_tenant::Timestamp;

use super::{ms_since, CycleReport, Engine, Pending};
use crate::events::{id, Level};
use crate::state::{RetryState, SyncStatus, UserDiagnostics};
use crate::SyncError;

/// The on-prem time of a password change, for "newest wins". The replication metadata's
/// originating time has one-second resolution; its version (bumped by every originating
/// write) orders changes within one second.
pub(super) fn change_time(
    account: &ReplicatedAccount,
    user: &DirectoryUser,
    now: Timestamp,
) -> Timestamp {
    if let Some(meta) = &account.password_metadata {
        let within_second = i64::from(meta.version.min(999_999));
        return Timestamp::from_unix_micros(meta.changed_unix * 1_000_000 + within_second);
    }
    account
        .pwd_last_set
        .and_then(FileTime::to_unix_micros)
        .or_else(|| user.pwd_last_set.to_unix_micros())
        .map(Timestamp::from_unix_micros)
        .unwrap_or(now)
}

impl Engine {
    /// The replicated password changes of in-scope users (`by_guid` indexes `in_scope`),
    /// sorted by on-prem change time; each user delivered is noted in `seen`, so that the
    /// fetches after replication ([`Engine::pend_fetched`]) skip it.
    pub(super) fn pend_replicated<'u>(
        &self,
        in_scope: &'u [DirectoryUser],
        by_guid: &HashMap<Guid, usize>,
        accounts: Vec<ReplicatedAccount>,
        seen: &mut HashSet<Guid>,
    ) -> Vec<Pending<'u>> {
        let now = self.now();
        let mut pending = Vec::new();
        for account in accounts {
            if let Some(&i) = by_guid.get(&account.guid) {
                if account.password_replicated {
                    seen.insert(account.guid);
                    let user = &in_scope[i];
                    let changed_at = change_time(&account, user, now);
                    pending.push(Pending {
                        user,
                        account,
                        changed_at,
                    });
                }
            }
        }
        pending.sort_by_key(|p| p.changed_at);
        pending
    }

    /// After replication: the current password of users created or back in scope now
    /// without a password change in this window (moved into an OU, added to a group,
    /// re-enabled), and of due retries, fetched one by one and sorted by on-prem change
    /// time. A user whose password cannot be fetched is recorded as failed (and queued for
    /// retry).
    pub(super) fn pend_fetched<'u>(
        &self,
        in_scope: &'u [DirectoryUser],
        by_guid: &HashMap<Guid, usize>,
        back_in_scope: &HashSet<Guid>,
        seen: &HashSet<Guid>,
        report: &mut CycleReport,
    ) -> Result<Vec<Pending<'u>>, SyncError> {
        let now = self.now();
        let mut pending = Vec::new();
        let mut fetch: Vec<Guid> = back_in_scope
            .iter()
            .filter(|g| by_guid.contains_key(*g) && !seen.contains(*g))
            .copied()
            .collect();
        fetch.sort_unstable();
        for guid in self.state.due_retries(now)? {
            if let Some(g) = Guid::parse(&guid) {
                if by_guid.contains_key(&g) && !seen.contains(&g) && !fetch.contains(&g) {
                    fetch.push(g);
                }
            }
        }
        if !fetch.is_empty() {
            let started = Instant::now();
            let fetched = self.fetch(&fetch);
            report.timings.replicate_ms += ms_since(started);
            for (guid, result) in fetch.iter().zip(fetched) {
                let user = &in_scope[by_guid[guid]];
                self.pend_or_fail(user, result, now, report, &mut pending)?;
            }
        }
        pending.sort_by_key(|p| p.changed_at);
        Ok(pending)
    }

    /// Single users' current passwords; when the DC cannot be reached at all, each user
    /// fails with that reason.
    /// One user's single-object replication: a pending delivery, or (the DC could not give
    /// this user's password) a recorded failure that the retry queue takes up.
    pub(super) fn pend_or_fail<'u>(
        &self,
        user: &'u DirectoryUser,
        result: Result<ReplicatedAccount, impl std::fmt::Display>,
        now: Timestamp,
        report: &mut CycleReport,
        pending: &mut Vec<Pending<'u>>,
    ) -> Result<(), SyncError> {
        match result {
            Ok(account) => {
                let changed_at = change_time(&account, user, now);
                pending.push(Pending {
                    user,
                    account,
                    changed_at,
                });
                Ok(())
            }
            Err(reason) => {
                let d = self.diagnostics(
                    user,
                    SyncStatus::Error,
                    format!("could not read the password from the DC: {reason}"),
                    None,
                    None,
                );
                self.fail(report, d)
            }
        }
    }

    pub(super) fn fetch(&self, guids: &[Guid]) -> Vec<Result<ReplicatedAccount, String>> {
        match self.replication.fetch(guids) {
            Ok(results) => results
                .into_iter()
                .map(|r| r.map_err(|e| e.to_string()))
                .collect(),
            Err(e) => {
                let reason = e.to_string();
                guids.iter().map(|_| Err(reason.clone())).collect()
            }
        }
    }

    pub(super) fn diagnostics(
        &self,
        user: &DirectoryUser,
        status: SyncStatus,
        reason: String,
        changed_at: Option<Timestamp>,
        applied_at: Option<Timestamp>,
    ) -> UserDiagnostics {
        UserDiagnostics {
            object_guid: user.object_guid.to_string(),
            sam_account_name: user.sam_account_name.clone(),
            user_principal_name: user.user_principal_name.clone(),
            source_anchor: user.source_anchor(),
            last_attempt_at: self.now(),
            status,
            reason,
            onprem_changed_at: changed_at,
            applied_at,
            retry: RetryState::None,
        }
    }

    /// Record a success; a user that was in the retry queue leaves it.
    pub(super) fn succeed(
        &self,
        report: &mut CycleReport,
        d: UserDiagnostics,
    ) -> Result<(), SyncError> {
        let started = Instant::now();
        let was_queued = !matches!(
            self.state.user_by_guid(&d.object_guid)?.map(|x| x.retry),
            None | Some(RetryState::None)
        );
        self.state.record(&d)?;
        report.timings.state_ms += ms_since(started);
        if was_queued {
            self.emit(
                id::RETRY_QUEUE_REMOVE,
                Level::Info,
                format!("{} removed from the retry queue", d.sam_account_name),
                json!({ "user": d.sam_account_name }),
            );
        }
        report.users.push(d);
        Ok(())
    }

    /// Record a failure and queue a retry (with backoff), or give up after the last attempt.
    pub(super) fn fail(
        &self,
        report: &mut CycleReport,
        mut d: UserDiagnostics,
    ) -> Result<(), SyncError> {
        let started = Instant::now();
        self.state.record(&d)?;
        d.retry = self.state.queue_retry(&d.object_guid, self.now())?;
        report.timings.state_ms += ms_since(started);
        let data = json!({ "user": d.sam_account_name, "status": d.status.as_str(), "reason": d.reason, "retry": d.retry });
        self.emit(
            id::OBJECT_FAILED,
            Level::Warning,
            format!(
                "password sync failed for {}: {}",
                d.sam_account_name, d.reason
            ),
            data.clone(),
        );
        match d.retry {
            RetryState::Abandoned { attempts } => self.emit(
                id::NO_RETRY,
                Level::Error,
                format!("{} will not be retried after {attempts} attempts; a new on-prem change or a full sync tries again", d.sam_account_name),
                data,
            ),
            _ => {
                self.emit(id::RETRY_QUEUE_ADD, Level::Warning, format!("{} added to the retry queue", d.sam_account_name), data);
                report.retry_queued += 1;
            }
        }
        report.failed += 1;
        report.users.push(d);
        Ok(())
    }
}
