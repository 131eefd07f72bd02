//! Stage 5, deliver: filter, digest and apply the pending passwords in on-prem
//! chronological order, in credential batches, recording each user's outcome.

use zeroize::Zeroizing;

use phsync_hash::{new_random_digests, NtHash};
use phsync_tenant::{CloudError, CredentialOutcome, SyncedCredential};

use std::time::Instant;

use super::provision::spec;
use super::{ms_since, CycleReport, Engine, Pending, ProgressFn};
use crate::state::SyncStatus;
use crate::SyncError;

impl Engine {
    /// Filter, digest (batch) and apply pending passwords in the order given.
    pub(super) fn deliver(
        &self,
        pending: Vec<Pending>,
        report: &mut CycleReport,
        progress: ProgressFn<'_>,
    ) -> Result<(), SyncError> {
        // Progress counts the cycle's credentials, not this call's: a full sync delivers
        // batch by batch (`report.changes` already counts `pending`).
        let base = report.changes.saturating_sub(pending.len() as u64);
        let mut to_send: Vec<(Pending, NtHash)> = Vec::new();
        // The users filtered out here are recorded in one state transaction.
        let batch = self.state.batch()?;
        for mut p in pending {
            let Some(nt) = p.account.nt_hash.take() else {
                let d = self.diagnostics(
                    p.user,
                    SyncStatus::MissingAttribute,
                    "the DC sent no password hash (unicodePwd absent or empty); nothing was synced"
                        .into(),
                    Some(p.changed_at),
                    None,
                );
                self.fail(report, d)?;
                continue;
            };
            if p.must_change() && !self.settings.rules.sync_temporary_passwords {
                let d = self.diagnostics(p.user, SyncStatus::FilteredByTarget, "the user must change the password at next logon; temporary passwords are not synced (sync_temporary_passwords = false)".into(), Some(p.changed_at), None);
                let started = Instant::now();
                self.state.record(&d)?;
                report.timings.state_ms += ms_since(started);
                report.filtered += 1;
                report.users.push(d);
                continue;
            }
            to_send.push((p, nt));
        }
        let started = Instant::now();
        batch.commit()?;
        report.timings.state_ms += ms_since(started);
        if to_send.is_empty() {
            return Ok(());
        }
        let tenant = self.tenant()?;
        let nts: Vec<&NtHash> = to_send.iter().map(|(_, nt)| nt).collect();
        // Only the random generator can fail here.
        let started = Instant::now();
        let digests = new_random_digests(&nts).map_err(|e| SyncError::Random(e.to_string()))?;
        report.timings.digest_ms += ms_since(started);
        let total = to_send.len() as u64;
        let creds: Vec<SyncedCredential> = to_send
            .iter()
            .zip(digests)
            .map(|((p, nt), digest)| {
                let leak_check = self.leak_check(nt);
                if leak_check.is_some_and(|c| c.leaked) {
                    tracing::warn!(user = %p.user.sam_account_name, "the password is in the leaked-hash list");
                }
                SyncedCredential {
                    source_anchor: p.user.source_anchor(),
                    digest: Zeroizing::new(digest.encode().to_string()),
                    changed_at: p.changed_at,
                    force_change_at_next_sign_in: p.must_change(),
                    leak_check,
                }
            })
            .collect();
        // Chronological order holds across batches: each batch is applied in order, and
        // the next is sent only after the previous one's results are in.
        let batch = self.credential_batch;
        let mut done = 0u64;
        for (pendings, creds) in to_send.chunks(batch).zip(creds.chunks(batch)) {
            // Between batches: the caller never stores the cursor past what was skipped.
            self.check_stop()?;
            let started = Instant::now();
            let results = tenant.apply_synced_credentials(creds)?;
            report.timings.tenant_ms += ms_since(started);
            // One state transaction per credential batch, not one per user.
            let batch = self.state.batch()?;
            for (((p, _nt), cred), result) in pendings.iter().zip(creds).zip(results) {
                let result = match result {
                    // The user vanished from the tenant since provisioning (deleted by an
                    // administrator, or a replica behind): provision it and retry once.
                    Err(CloudError::AnchorNotFound(_)) => {
                        let started = Instant::now();
                        let retried = tenant
                            .provision_synced_user(&spec(p.user, p.user.enabled()))
                            .and_then(|_| tenant.apply_synced_credential(cred));
                        report.timings.tenant_ms += ms_since(started);
                        retried
                    }
                    other => other,
                };
                self.record_credential(p, cred.force_change_at_next_sign_in, result, report)?;
                done += 1;
                progress("credentials", base + done, base + total);
            }
            let started = Instant::now();
            batch.commit()?;
            report.timings.state_ms += ms_since(started);
        }
        Ok(())
    }

    /// Turn one tenant answer into diagnostics, retry-queue entries and report counts.
    fn record_credential(
        &self,
        p: &Pending<'_>,
        must_change: bool,
        result: Result<CredentialOutcome, CloudError>,
        report: &mut CycleReport,
    ) -> Result<(), SyncError> {
        match result {
            Ok(CredentialOutcome::Applied) => {
                let reason = if must_change {
                    "synced; the user must change it at next sign-in"
                } else {
                    "synced"
                };
                tracing::info!(user = %p.user.sam_account_name, changed_at = %p.changed_at, "password synced");
                let d = self.diagnostics(
                    p.user,
                    SyncStatus::Success,
                    reason.into(),
                    Some(p.changed_at),
                    Some(self.now()),
                );
                self.succeed(report, d)?;
                report.applied += 1;
            }
            Ok(CredentialOutcome::Stale { current_changed_at }) => {
                let d = self.diagnostics(
                    p.user,
                    SyncStatus::Success,
                    format!("the cloud already has this or a newer password (set {current_changed_at}); not overwritten"),
                    Some(p.changed_at),
                    None,
                );
                self.succeed(report, d)?;
                report.stale += 1;
            }
            Err(CloudError::AnchorNotFound(_)) => {
                let d = self.diagnostics(
                    p.user,
                    SyncStatus::RetryRequestedByTarget,
                    "the cloud user does not exist yet; will retry".into(),
                    Some(p.changed_at),
                    None,
                );
                self.fail(report, d)?;
            }
            Err(e) if e.kind().is_outage() => {
                // The tenant is down: fail the cycle; the cursor stays, nothing is lost.
                return Err(e.into());
            }
            Err(e) => {
                let d = self.diagnostics(
                    p.user,
                    SyncStatus::Error,
                    e.to_string(),
                    Some(p.changed_at),
                    None,
                );
                self.fail(report, d)?;
            }
        }
        Ok(())
    }
}
