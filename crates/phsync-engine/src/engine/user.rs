//! One user now (`phsync sync --user`, `phs_sync_user`): the same stages for one account.

use super::provision::spec;
use super::retry::change_time;
use super::{CycleReport, Engine, Pending};
use crate::state::{SyncStatus, UserDiagnostics};
use crate::SyncError;
use phsync_tenant::Origin;

impl Engine {
    /// Sync one user now (by sAMAccountName, DOMAIN\sam, UPN, DN or GUID).
    pub fn sync_user(&mut self, name: &str) -> Result<UserDiagnostics, SyncError> {
        self.check_fips()?;
        self.align_tenant_policy()?;
        let (user, in_scope) = self.directory.resolve_user(name)?;
        let tenant = self.tenant()?;
        let mut report = CycleReport::new("user", self.now(), u64::from(in_scope));
        if !in_scope {
            let d = self.diagnostics(&user, SyncStatus::FilteredByTarget, "the user is out of the sync scope (disabled, outside the scoped OUs or groups, or not a plain user object)".into(), None, None);
            self.state.record(&d)?;
            if let Some(t) = tenant.user_by_anchor(&user.source_anchor())? {
                if t.enabled && t.origin == Origin::Synced {
                    tenant.provision_synced_user(&phsync_tenant::SyncedUserSpec {
                        source_anchor: user.source_anchor(),
                        user_principal_name: t.user_principal_name,
                        display_name: t.display_name,
                        enabled: false,
                    })?;
                }
            }
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
}
