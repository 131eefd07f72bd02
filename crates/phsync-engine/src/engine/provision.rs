//! Stage 3, provision: the tenant's synced users follow the scope, and the tenant's policy
//! setting follows the config.

use std::collections::HashSet;

use phsync_directory::ScopeChanges;
use phsync_drsr::ReplicatedAccount;

use serde_json::json;

use phsync_directory::{DirectoryUser, Guid};
use phsync_tenant::{CloudError, Origin, ProvisionOutcome, SyncedUserSpec};

use super::user::disable_synced;
use super::{CycleReport, Engine, ProgressFn, Scoped};
use crate::events::{id, Level};
use crate::SyncError;

pub(super) fn spec(user: &DirectoryUser, enabled: bool) -> SyncedUserSpec {
    SyncedUserSpec {
        source_anchor: user.source_anchor(),
        user_principal_name: user.user_principal_name.clone(),
        display_name: user.display_name.clone(),
        enabled,
    }
}

impl Engine {
    /// Microsoft's CloudPasswordPolicyForPasswordSyncedUsersEnabled follows the config, once
    /// per engine, at its first cycle (never when an engine is merely opened). A shared
    /// tenant's policy belongs to its administrators: an agent that may not change it says
    /// so in a warning and syncs on.
    pub(super) fn align_tenant_policy(&mut self) -> Result<(), SyncError> {
        if self.policy_checked {
            return Ok(());
        }
        let wanted = self.settings.rules.apply_cloud_password_policy;
        let tenant = self.tenant()?;
        let mut settings = tenant.settings()?;
        if settings.apply_cloud_password_policy_to_synced != wanted {
            settings.apply_cloud_password_policy_to_synced = wanted;
            match tenant.update_settings(&settings) {
                Ok(()) => {}
                Err(CloudError::Forbidden(_)) => self.emit(
                    id::SYNC_ERROR,
                    Level::Warning,
                    format!(
                        "apply_cloud_password_policy = {wanted} in the config, but the tenant says {} and only its administrators can change it; the tenant's setting applies",
                        !wanted
                    ),
                    serde_json::Value::Null,
                ),
                Err(e) => return Err(e.into()),
            }
        }
        self.policy_checked = true;
        Ok(())
    }

    /// Create or update every in-scope user, and disable synced users that left the scope.
    /// Returns the users (by objectGUID) created or re-enabled now: their current password
    /// is fetched even without a change in this window.
    pub(super) fn provision(
        &self,
        in_scope: &[DirectoryUser],
        report: &mut CycleReport,
        progress: ProgressFn<'_>,
        is_full: bool,
    ) -> Result<HashSet<Guid>, SyncError> {
        let tenant = self.tenant()?;
        // One read of the tenant's users serves both the re-enabled check and the
        // out-of-scope pass: provisioning only touches in-scope users, which that pass skips.
        let tenant_users = tenant
            .users()
            .map_err(|e| self.domain_failure(is_full, e.into()))?;
        let was_disabled: HashSet<&str> = tenant_users
            .iter()
            .filter(|u| u.origin == Origin::Synced && !u.enabled)
            .filter_map(|u| u.source_anchor.as_deref())
            .collect();
        let specs: Vec<SyncedUserSpec> = in_scope.iter().map(|u| spec(u, u.enabled())).collect();
        let outcomes = tenant
            .provision_synced_users(&specs)
            .map_err(|e| self.domain_failure(is_full, e.into()))?;
        let mut created = HashSet::new();
        for (user, outcome) in in_scope.iter().zip(outcomes) {
            let outcome = match outcome {
                Ok(o) => o,
                // The tenant as a whole is down: the cycle stops, its cursor kept.
                Err(e) if e.kind().is_outage() => {
                    return Err(self.domain_failure(is_full, e.into()))
                }
                Err(e) => {
                    // Its credential will find no user and go to the retry queue.
                    self.emit(
                        id::SYNC_ERROR,
                        Level::Error,
                        format!("{} could not be provisioned in the cloud: {e}", user.sam_account_name),
                        json!({ "user": user.sam_account_name, "source_anchor": user.source_anchor() }),
                    );
                    continue;
                }
            };
            let reenabled = user.enabled() && was_disabled.contains(user.source_anchor().as_str());
            if outcome == ProvisionOutcome::Created || reenabled {
                created.insert(user.object_guid);
            }
        }
        progress("provision", in_scope.len() as u64, in_scope.len() as u64);
        report.disabled = self
            .disable_out_of_scope(in_scope, tenant_users)
            .map_err(|e| self.domain_failure(is_full, e))?;
        Ok(created)
    }

    /// Provisioning after a read of the scope's changes: only the users changed, and those
    /// the replication or the retry queue names (resolved in the directory: in scope or
    /// not), are provisioned; of the changed users not in scope, those in scope as of the
    /// last cycle are disabled in the tenant. Nothing here reads every user.
    pub(super) fn provision_changes(
        &self,
        changes: ScopeChanges,
        accounts: &[ReplicatedAccount],
        report: &mut CycleReport,
    ) -> Result<Scoped, SyncError> {
        let ScopeChanges {
            in_scope: mut users,
            out_of_scope,
        } = changes;
        let mut known: HashSet<Guid> = users.iter().map(|u| u.object_guid).collect();
        known.extend(out_of_scope.iter().copied());
        let mut ask: Vec<Guid> = Vec::new();
        for a in accounts.iter().filter(|a| a.password_replicated) {
            if known.insert(a.guid) {
                ask.push(a.guid);
            }
        }
        for g in self.state.due_retries(self.now())? {
            if let Some(g) = Guid::parse(&g) {
                if known.insert(g) {
                    ask.push(g);
                }
            }
        }
        if !ask.is_empty() {
            for found in self.directory.resolve_guids(&ask)?.into_iter().flatten() {
                if let (user, true) = found {
                    users.push(user);
                }
            }
        }
        let mut entered = Vec::new();
        for u in &users {
            if !self.state.scope_contains(&u.object_guid.to_string())? {
                entered.push(u.object_guid);
            }
        }
        let tenant = self.tenant()?;
        let specs: Vec<SyncedUserSpec> = users.iter().map(|u| spec(u, u.enabled())).collect();
        let outcomes = tenant
            .provision_synced_users(&specs)
            .map_err(|e| self.domain_failure(false, e.into()))?;
        let mut back_in_scope: HashSet<Guid> = entered.iter().copied().collect();
        for (user, outcome) in users.iter().zip(outcomes) {
            match outcome {
                // Created now; or updated and enabled: perhaps re-enabled (the tenant's
                // users are not read here to tell), so its current password is fetched.
                Ok(ProvisionOutcome::Created) => {
                    back_in_scope.insert(user.object_guid);
                }
                Ok(ProvisionOutcome::Updated) if user.enabled() => {
                    back_in_scope.insert(user.object_guid);
                }
                Ok(_) => {}
                Err(e) if e.kind().is_outage() => return Err(self.domain_failure(false, e.into())),
                Err(e) => self.emit(
                    id::SYNC_ERROR,
                    Level::Error,
                    format!(
                        "{} could not be provisioned in the cloud: {e}",
                        user.sam_account_name
                    ),
                    json!({ "user": user.sam_account_name, "source_anchor": user.source_anchor() }),
                ),
            }
        }
        let mut left = Vec::new();
        for g in out_of_scope {
            if !self.state.scope_contains(&g.to_string())? {
                continue;
            }
            left.push(g);
            let anchor = phsync_directory::source_anchor(&g);
            if disable_synced(tenant, &anchor).map_err(|e| self.domain_failure(false, e))? {
                self.emit(
                    id::SYNC_RESPONSE,
                    Level::Info,
                    format!("{g} left the sync scope on-prem; disabled in the cloud"),
                    json!({ "object_guid": g.to_string(), "source_anchor": anchor }),
                );
                report.disabled += 1;
            }
        }
        Ok(Scoped {
            users,
            back_in_scope,
            mark: None,
            entered,
            left,
            full: false,
        })
    }

    /// Synced users the tenant still lets sign in although they left the scope (disabled,
    /// moved, deleted, or no longer a plain user): disable them.
    fn disable_out_of_scope(
        &self,
        in_scope: &[DirectoryUser],
        tenant_users: Vec<phsync_tenant::User>,
    ) -> Result<u64, SyncError> {
        let tenant = self.tenant()?;
        let anchors: HashSet<String> = in_scope.iter().map(|u| u.source_anchor()).collect();
        let mut disabled = 0;
        for user in tenant_users {
            let Some(anchor) = &user.source_anchor else {
                continue;
            };
            if user.origin == Origin::Synced && user.enabled && !anchors.contains(anchor) {
                tenant.provision_synced_user(&SyncedUserSpec {
                    source_anchor: anchor.clone(),
                    user_principal_name: user.user_principal_name.clone(),
                    display_name: user.display_name.clone(),
                    enabled: false,
                })?;
                self.emit(
                    id::SYNC_RESPONSE,
                    Level::Info,
                    format!("{} left the sync scope on-prem; disabled in the cloud", user.user_principal_name),
                    json!({ "user_principal_name": user.user_principal_name, "source_anchor": anchor }),
                );
                disabled += 1;
            }
        }
        Ok(disabled)
    }
}
