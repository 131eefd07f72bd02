//! Risk marks against a user's current password (issue 18): the sync agent checks each
//! synced NT hash against a leaked-credentials list and sends only the verdict
//! ([`LeakCheck`]); the tenant keeps one `leaked_credentials` mark per user while the
//! current password is leaked, and clears it when the password changes (on-prem or in the
//! cloud) or the list no longer holds it. Every transition has an audit row; no hash is
//! ever stored.

use super::store::{CredentialRow, RiskRow, StoreTx, UserRow};
use super::tenant::LocalTenant;
use super::{CloudResult, LeakCheck, PasswordSource, RiskKind, SyncedCredential, Timestamp};

/// The audit action of every leaked-credentials transition.
pub const LEAKED_ACTION: &str = "risk.leaked_credentials";

/// Audit details name why a mark cleared.
pub(crate) const CLEARED_ONPREM: &str = "the password changed on-prem";
pub(crate) const CLEARED_RESET: &str = "an administrator reset the password in the cloud";
pub(crate) const CLEARED_USER_CHANGE: &str = "the user changed the password in the cloud";
pub(crate) const CLEARED_NOT_LISTED: &str = "the current password is no longer in the leaked list";

/// The sign-in policy a leak check asks for on a credential: a leaked password under
/// `block_sign_in` must be changed at next sign-in.
pub(crate) fn forces_change(check: Option<&LeakCheck>) -> bool {
    check.is_some_and(|c| c.leaked && c.block_sign_in)
}

fn marked_detail(check: &LeakCheck, also: bool) -> String {
    let mut d = String::from(if also {
        "the new password is in the leaked list too"
    } else {
        "the current password is in the leaked list"
    });
    if let Some(n) = check.breach_count {
        d.push_str(&format!(" ({n} breaches)"));
    }
    if check.block_sign_in {
        d.push_str("; must change at next sign-in");
    }
    d
}

impl LocalTenant {
    /// The user's mark of `kind`, if any.
    fn mark(
        &self,
        tx: &mut dyn StoreTx,
        user: &UserRow,
        kind: RiskKind,
    ) -> CloudResult<Option<RiskRow>> {
        Ok(tx
            .risks(Some(user.id), None)?
            .into_iter()
            .map(|(_, r)| r)
            .find(|r| r.kind == kind))
    }

    fn put_mark(
        &self,
        tx: &mut dyn StoreTx,
        user: &UserRow,
        check: &LeakCheck,
        detected_at: Timestamp,
        also: bool,
    ) -> CloudResult<()> {
        tx.put_risk(&RiskRow {
            user_id: user.id,
            kind: RiskKind::LeakedCredentials,
            detected_at,
            breach_count: check.breach_count,
        })?;
        self.audit_risk(tx, user, "marked", marked_detail(check, also))
    }

    fn audit_risk(
        &self,
        tx: &mut dyn StoreTx,
        user: &UserRow,
        outcome: &str,
        detail: String,
    ) -> CloudResult<()> {
        self.audit(
            tx,
            LEAKED_ACTION,
            Some(&user.upn),
            user.source_anchor.as_deref(),
            outcome,
            Some(detail),
        )
    }

    /// Clear the user's leaked-credentials mark, if any, with an audit row naming `reason`.
    pub(crate) fn clear_leak_mark(
        &self,
        tx: &mut dyn StoreTx,
        user: &UserRow,
        reason: &str,
    ) -> CloudResult<()> {
        if tx.delete_risk(user.id, RiskKind::LeakedCredentials)? {
            self.audit_risk(tx, user, "cleared", reason.to_string())?;
        }
        Ok(())
    }

    /// Bring the user's mark in line with a synced credential the tenant just handled.
    /// `applied`: it is the user's new password. Otherwise (stale) it counts only if it is
    /// the user's current password again (same on-prem change, as each full sync sends):
    /// a list configured or updated since then marks or clears the user now.
    pub(crate) fn follow_leak_check(
        &self,
        tx: &mut dyn StoreTx,
        user: &UserRow,
        cred: &SyncedCredential,
        applied: bool,
    ) -> CloudResult<()> {
        let now = self.now();
        let existing = self.mark(tx, user, RiskKind::LeakedCredentials)?;
        if applied {
            match (cred.leak_check.filter(|c| c.leaked), existing) {
                (Some(check), existing) => {
                    self.put_mark(tx, user, &check, now, existing.is_some())?
                }
                (None, Some(_)) => self.clear_leak_mark(tx, user, CLEARED_ONPREM)?,
                (None, None) => {}
            }
            return Ok(());
        }
        let Some(check) = cred.leak_check else {
            return Ok(());
        };
        let Some(current) = tx.credential(user.id)? else {
            return Ok(());
        };
        if current.source != PasswordSource::Synced || current.changed_at != cred.changed_at {
            return Ok(());
        }
        if !check.leaked {
            return self.clear_leak_mark(tx, user, CLEARED_NOT_LISTED);
        }
        match existing {
            // Still leaked: one mark, first detection kept; only the count follows the list.
            Some(mark) if mark.breach_count != check.breach_count => tx.put_risk(&RiskRow {
                breach_count: check.breach_count,
                ..mark
            })?,
            Some(_) => {}
            None => self.put_mark(tx, user, &check, now, false)?,
        }
        if check.block_sign_in && !current.force_change {
            tx.put_credential(
                user.id,
                &CredentialRow {
                    force_change: true,
                    ..current
                },
            )?;
        }
        Ok(())
    }
}
