//! One user now (`phsync sync --user`, `phs_sync_user`), and the users a change notification
//! names (`sync_objects`): the same stages for a few accounts, without moving the cursor.

use std::collections::HashSet;

use super::changes::Known;
use super::provision::spec;
use super::retry::change_time;
use super::{CycleReport, Engine, Pending};
use crate::state::{SyncStatus, UserDiagnostics};
use crate::SyncError;
use phsync_directory::{DirectoryUser, Guid};
use phsync_tenant::{CloudTenant, Origin};

const OUT_OF_SCOPE: &str = "the user is out of the sync scope (disabled, outside the scoped OUs or groups, or not a plain user object)";

/// A synced user the tenant still lets sign in is disabled there; true if it was.
pub(super) fn disable_synced(tenant: &dyn CloudTenant, anchor: &str) -> Result<bool, SyncError> {
    if let Some(t) = tenant.user_by_anchor(anchor)? {
        if t.enabled && t.origin == Origin::Synced {
            tenant.provision_synced_user(&phsync_tenant::SyncedUserSpec {
                source_anchor: anchor.to_string(),
                user_principal_name: t.user_principal_name,
                display_name: t.display_name,
                enabled: false,
            })?;
            return Ok(true);
        }
    }
    Ok(false)
}

impl Engine {
    /// Sync one user now (by sAMAccountName, DOMAIN\sam, UPN, DN or GUID).
    pub fn sync_user(&mut self, name: &str) -> Result<UserDiagnostics, SyncError> {
        self.check_fips()?;
        self.align_tenant_policy()?;
        let (user, in_scope) = self.directory.resolve_user(name)?;
        let tenant = self.tenant()?;
        let mut report = CycleReport::new("user", self.now(), u64::from(in_scope));
        if !in_scope {
            let d = self.diagnostics(
                &user,
                SyncStatus::FilteredByTarget,
                OUT_OF_SCOPE.into(),
                None,
                None,
            );
            self.state.record(&d)?;
            disable_synced(tenant, &user.source_anchor())?;
            return Ok(d);
        }
        tenant.provision_synced_user(&spec(&user, user.enabled()))?;
        let account = match self.replication.fetch(&[user.object_guid])?.pop() {
            Some(result) => result?,
            None => {
                return Err(SyncError::Replication(phsync_drsr::DrsrError::Protocol {
                    context: "a single-object replication",
                    expected: "one result for the one user asked for".into(),
                }))
            }
        };
        let changed_at = change_time(&account, &user, self.now());
        self.deliver(
            vec![Pending {
                user: &user,
                account,
                changed_at,
            }],
            &mut report,
            &mut |_, _, _| {},
        )?;
        // deliver records exactly one outcome for the one pending user.
        report
            .users
            .pop()
            .ok_or_else(|| SyncError::Host("internal: no outcome was recorded for the user".into()))
    }

    /// Sync the users a change notification named (by objectGUID), as [`Engine::sync_user`]
    /// does for one, in one go: each is resolved and checked against the scope (one that
    /// left it, or no longer exists as a user, is disabled in the tenant), the in-scope ones
    /// are provisioned and their current passwords fetched in ONE replication call
    /// (single-object GetNCChanges with EXOP_REPL_SECRET each), then digested and delivered
    /// in on-prem chronological order through the cycle's deliver path (stale refusal,
    /// retry queue, diagnostics, events). A GUID given twice counts once.
    ///
    /// The replication cursor does not move: the next incremental cycle replays the same
    /// changes and the tenant refuses them as already current, so the periodic cycle stays
    /// the safety net. The last cycle's record is not touched either.
    ///
    /// Errors: a DC, directory or tenant outage fails the whole batch with nothing recorded
    /// for the users not yet delivered (the next cycle covers them); a single user the DC
    /// cannot replicate is recorded as failed and queued for retry.
    pub fn sync_objects(&mut self, guids: &[Guid]) -> Result<CycleReport, SyncError> {
        self.sync_changed(guids, &HashSet::new()).map(|(r, _)| r)
    }

    /// [`Engine::sync_objects`], except that the users in `no_password` (a change that left
    /// their password as the engine knows it: disabled, moved, renamed) are resolved, scoped
    /// and provisioned but not replicated. Also returns how many users were replicated. On
    /// success, the run loop's known users follow what was resolved.
    pub(crate) fn sync_changed(
        &mut self,
        guids: &[Guid],
        no_password: &HashSet<Guid>,
    ) -> Result<(CycleReport, usize), SyncError> {
        self.check_fips()?;
        self.align_tenant_policy()?;
        let mut seen = HashSet::new();
        let guids: Vec<Guid> = guids.iter().copied().filter(|g| seen.insert(*g)).collect();
        let mut report = CycleReport::new("notified", self.now(), 0);
        if guids.is_empty() {
            report.ok = true;
            report.finished_at = self.now();
            return Ok((report, 0));
        }
        let resolved = self.directory.resolve_guids(&guids)?;
        let tenant = self.tenant()?;
        let mut in_scope: Vec<DirectoryUser> = Vec::new();
        for (guid, found) in guids.iter().zip(resolved) {
            match found {
                Some((user, true)) => in_scope.push(user),
                Some((user, false)) => {
                    // Notifications name every changed user of the domain: one this engine
                    // never synced (no record, nothing to disable) is none of its business.
                    let disabled = disable_synced(tenant, &user.source_anchor())?;
                    let known = self
                        .state
                        .user_by_guid(&user.object_guid.to_string())?
                        .is_some();
                    if disabled || known {
                        let d = self.diagnostics(
                            &user,
                            SyncStatus::FilteredByTarget,
                            OUT_OF_SCOPE.into(),
                            None,
                            None,
                        );
                        self.state.record(&d)?;
                        report.filtered += 1;
                        report.users.push(d);
                    }
                    if disabled {
                        report.disabled += 1;
                    }
                }
                None => {
                    let anchor = phsync_directory::source_anchor(guid);
                    if disable_synced(tenant, &anchor)? {
                        report.disabled += 1;
                    }
                }
            }
        }
        report.in_scope = in_scope.len() as u64;
        // Known from now on: in scope as resolved; everything else is not.
        let follow = |known: &mut Option<Known>, in_scope: &[DirectoryUser]| {
            if let Some(known) = known {
                for g in &guids {
                    known.forget(g);
                }
                for u in in_scope {
                    known.update(u);
                }
            }
        };
        if in_scope.is_empty() {
            report.finished_at = self.now();
            report.ok = true;
            follow(&mut self.known, &in_scope);
            return Ok((report, 0));
        }
        let specs: Vec<_> = in_scope.iter().map(|u| spec(u, u.enabled())).collect();
        for outcome in tenant.provision_synced_users(&specs)? {
            match outcome {
                Ok(_) => {}
                Err(e) if e.kind().is_outage() => return Err(e.into()),
                // Its credential finds no user and goes to the retry queue.
                Err(e) => tracing::warn!("a notified user could not be provisioned: {e}"),
            }
        }
        let replicate: Vec<&DirectoryUser> = in_scope
            .iter()
            .filter(|u| !no_password.contains(&u.object_guid))
            .collect();
        let wanted: Vec<Guid> = replicate.iter().map(|u| u.object_guid).collect();
        let fetched = if wanted.is_empty() {
            Vec::new()
        } else {
            self.replication.fetch(&wanted)?
        };
        if fetched.len() != wanted.len() {
            return Err(SyncError::Replication(phsync_drsr::DrsrError::Protocol {
                context: "a single-object replication",
                expected: format!("{} results, one per user asked for", wanted.len()),
            }));
        }
        let now = self.now();
        let mut pending = Vec::with_capacity(replicate.len());
        for (user, result) in replicate.into_iter().zip(fetched) {
            self.pend_or_fail(user, result, now, &mut report, &mut pending)?;
        }
        pending.sort_by_key(|p| p.changed_at);
        report.changes = pending.len() as u64;
        self.deliver(pending, &mut report, &mut |_, _, _| {})?;
        report.finished_at = self.now();
        report.ok = report.failed == 0;
        follow(&mut self.known, &in_scope);
        Ok((report, wanted.len()))
    }
}
