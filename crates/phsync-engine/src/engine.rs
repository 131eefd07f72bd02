//! One engine, three front doors. A cycle: scope (LDAP) → replicate (MS-DRSR, full or from
//! the cursor) → provision users → digests (SIMD batch, all cores) → credentials in
//! chronological order → retries → cursor. The cursor is stored only after every change it
//! covers is in the tenant or durably in the retry queue, so a crash anywhere loses nothing;
//! re-sending a change is harmless because the tenant refuses it as not newer.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use super::events::{id, EventLog, Level};
use super::state::{HistoryEntry, RetryState, StateStore, SyncStatus, UserDiagnostics};
use super::{fips, SyncError};
use phsync_tenant::{
    CloudError, CloudTenant, CredentialOutcome, Origin, ProvisionOutcome, SyncedCredential,
    SyncedUserSpec, TenantTarget, Timestamp,
};

/// Credentials per tenant call: one HTTPS request for a remote tenant. A stop request takes
/// effect between batches (the batch in flight is applied and recorded first).
pub const CREDENTIAL_BATCH: usize = 200;

/// Errors that say the tenant as a whole is unusable right now (down, unreachable, our
/// token refused): the cycle fails and keeps its cursor, nothing is lost.
fn tenant_down(e: &CloudError) -> bool {
    e.kind().is_outage()
}
use crate::config::{AuthMethod, CloudConfig, Config, SourceConfig, StateConfig};
use phsync_directory::DirectoryUser;
use phsync_drsr::{Auth, DrsrClient, DrsrConfig, DrsrError, ReplicatedAccount, ReplicationCursor};
use phsync_hash::{new_random_digests, NtHash};

const CURSOR_KEY: &str = "replication_cursor";
const LAST_CYCLE_KEY: &str = "last_cycle";
const EVENT_LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;
const EVENT_LOG_FILES: usize = 10;

/// Progress: (stage, done, total). Called on the caller's thread only.
pub type ProgressFn<'a> = &'a mut dyn FnMut(&str, u64, u64);

#[derive(Debug, Clone, Serialize)]
pub struct CycleReport {
    pub mode: &'static str,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub in_scope: u64,
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
}

impl CycleReport {
    fn new(mode: &'static str, started_at: Timestamp, in_scope: u64) -> Self {
        CycleReport {
            mode,
            started_at,
            finished_at: started_at,
            in_scope,
            changes: 0,
            applied: 0,
            stale: 0,
            filtered: 0,
            disabled: 0,
            failed: 0,
            retry_queued: 0,
            users: Vec::new(),
            ok: true,
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
    fn from_report(r: &CycleReport, ok: bool, error: Option<String>) -> Self {
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
    fn parse_stored(text: &str) -> Option<LastCycle> {
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

/// One password to deliver.
struct Pending<'a> {
    user: &'a DirectoryUser,
    account: ReplicatedAccount,
    changed_at: Timestamp,
}

pub struct Engine {
    config: Config,
    tenant: Box<dyn CloudTenant>,
    state: StateStore,
    events: EventLog,
    rt: tokio::runtime::Runtime,
    stop: Arc<AtomicBool>,
}

pub(crate) fn guid_string(bytes: &[u8; 16]) -> String {
    phsync_drsr::Guid(*bytes).to_string()
}

/// The on-prem time of a password change, for "newest wins". The replication metadata's
/// originating time has one-second resolution; its version (bumped by every originating
/// write) orders changes within one second.
fn change_time(account: &ReplicatedAccount, user: &DirectoryUser) -> Timestamp {
    if let Some(meta) = &account.password_metadata {
        let within_second = i64::from(meta.version.min(999_999));
        return Timestamp::from_unix_micros(meta.changed_unix * 1_000_000 + within_second);
    }
    account
        .pwd_last_set
        .and_then(Timestamp::from_filetime)
        .or_else(|| Timestamp::from_filetime(user.pwd_last_set))
        .unwrap_or_else(Timestamp::now)
}

/// The tenant's actor name for what the engine does (its audit entries).
pub(crate) const TENANT_ACTOR: &str = "sync-agent";

/// The sections the engine needs beyond `[source]`: `[cloud]` and `[state]`.
pub(crate) fn engine_sections(config: &Config) -> Result<(&CloudConfig, &StateConfig), SyncError> {
    let cloud_cfg = config.cloud.as_ref().ok_or_else(|| {
        SyncError::Setup("the config has no [cloud] section (tenant = \"...\")".into())
    })?;
    let state_cfg = config.state.as_ref().ok_or_else(|| {
        SyncError::Setup("the config has no [state] section (dir = \"...\")".into())
    })?;
    Ok((cloud_cfg, state_cfg))
}

/// Where the configured tenant lives.
pub(crate) fn tenant_target(cloud_cfg: &CloudConfig) -> TenantTarget {
    TenantTarget {
        location: cloud_cfg.tenant.clone(),
        token_file: cloud_cfg.token_file.clone(),
        ca_file: cloud_cfg.ca_file.clone(),
    }
}

/// The DC replication talks to: `domain_controller`, or the host of `ldap_url`.
pub(crate) fn dc_host(src: &SourceConfig) -> Result<String, SyncError> {
    match (&src.domain_controller, &src.ldap_url) {
        (Some(dc), _) => Ok(dc.clone()),
        (None, Some(url)) => url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', ':']).next())
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                SyncError::Setup(format!("cannot take a DC host from ldap_url {url:?}"))
            }),
        (None, None) => Err(SyncError::Setup("[source] needs domain_controller".into())),
    }
}

/// How the engine reaches the DC for replication: `[source]` as an MS-DRSR client config.
pub(crate) fn drsr_config(config: &Config) -> Result<DrsrConfig, SyncError> {
    let src = &config.source;
    let dc = dc_host(src)?;
    let name = src.username.trim();
    let (domain, user) = match (name.split_once('\\'), name.split_once('@')) {
        (Some((d, u)), _) => (d.to_string(), u.to_string()),
        (None, Some((u, _))) => (src.netbios_domain.clone(), u.to_string()),
        (None, None) => (src.netbios_domain.clone(), name.to_string()),
    };
    let password = src.password()?;
    let auth = match src.auth {
        AuthMethod::Ntlm => Auth::Ntlm {
            domain,
            user,
            password,
        },
        AuthMethod::Kerberos => Auth::Kerberos {
            realm: src.realm.clone(),
            kdc: src.kdc.clone().unwrap_or_else(|| format!("{dc}:88")),
            user,
            password,
            spn: src.spn.clone(),
        },
    };
    let mut cfg = DrsrConfig::new(dc, auth);
    cfg.port_override = src.rpc_port;
    cfg.connect_timeout = std::time::Duration::from_secs(src.timeout_seconds);
    Ok(cfg)
}

impl Engine {
    /// Load the config file and open the tenant, the state store and the event log.
    pub fn open(config_path: &Path) -> Result<Engine, SyncError> {
        let config = Config::load(config_path)?;
        Engine::with_config(config)
    }

    pub fn with_config(config: Config) -> Result<Engine, SyncError> {
        let (cloud_cfg, state_cfg) = engine_sections(&config)?;
        let state = StateStore::open(&state_cfg.dir)?;
        let events =
            EventLog::open(&state_cfg.dir, EVENT_LOG_MAX_BYTES, EVENT_LOG_FILES).map_err(|e| {
                SyncError::Setup(format!(
                    "cannot open the event log in {}: {e}",
                    state_cfg.dir.display()
                ))
            })?;
        let tenant = phsync_tenant::open_target(&tenant_target(cloud_cfg), TENANT_ACTOR)?;
        let mut settings = tenant.settings()?;
        let mut policy_note = None;
        if settings.apply_cloud_password_policy_to_synced != config.sync.apply_cloud_password_policy
        {
            settings.apply_cloud_password_policy_to_synced =
                config.sync.apply_cloud_password_policy;
            match tenant.update_settings(&settings) {
                Ok(()) => {}
                // A shared tenant's policy belongs to its administrators, not to one agent.
                Err(CloudError::Forbidden(_)) => {
                    policy_note = Some(format!(
                        "apply_cloud_password_policy = {} in the config, but the tenant says {} and only its administrators can change it; the tenant's setting applies",
                        config.sync.apply_cloud_password_policy,
                        !config.sync.apply_cloud_password_policy
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SyncError::Setup(format!("cannot start the async runtime: {e}")))?;
        let engine = Engine {
            config,
            tenant,
            state,
            events,
            rt,
            stop: Arc::new(AtomicBool::new(false)),
        };
        if let Some(note) = policy_note {
            engine.emit(
                id::SYNC_ERROR,
                Level::Warning,
                note,
                serde_json::Value::Null,
            );
        }
        Ok(engine)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// Set from another thread (a signal handler) to stop after the user in flight.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    fn emit(
        &self,
        event_id: u16,
        level: Level,
        message: impl Into<String>,
        data: serde_json::Value,
    ) {
        // A full disk must not stop a sync: the failure is already reported via tracing.
        let _ = self.events.emit(event_id, level, message, data);
    }

    fn check_fips(&self) -> Result<(), SyncError> {
        if fips::host_in_fips_mode() && !self.config.sync.allow_non_fips_crypto {
            self.emit(
                id::MD5_UNAVAILABLE,
                Level::Error,
                fips::FIPS_REFUSAL,
                serde_json::Value::Null,
            );
            return Err(SyncError::Fips);
        }
        Ok(())
    }

    fn drsr_config(&self) -> Result<DrsrConfig, SyncError> {
        drsr_config(&self.config)
    }

    /// A DC or tenant outage: event 611 (and 621 for a full sync), then the error.
    fn domain_failure(&self, full: bool, error: SyncError) -> SyncError {
        let domain = &self.config.source.netbios_domain;
        self.emit(
            id::DOMAIN_SYNC_ERROR,
            Level::Error,
            format!(
                "password hash sync failed for domain {domain}: {error}; the cycle will be retried"
            ),
            json!({ "domain": domain }),
        );
        if full {
            self.emit(
                id::FULL_SYNC_FAILED,
                Level::Error,
                format!("full password sync failed: {error}"),
                serde_json::Value::Null,
            );
        }
        error
    }

    fn scope_users(&self) -> Result<Vec<DirectoryUser>, SyncError> {
        let scope = self.config.sync.scope();
        self.rt.block_on(async {
            let mut dir = self.config.source.connect_directory().await?;
            let users = dir.users(&scope).await;
            dir.close().await;
            Ok(users?)
        })
    }

    /// `Err(Interrupted)` once the stop flag is set.
    fn check_stop(&self) -> Result<(), SyncError> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(SyncError::Interrupted);
        }
        Ok(())
    }

    /// Run one cycle: full on the first run or when `full`, incremental otherwise. The
    /// outcome (also a failure or a stop) is stored for [`Engine::last_cycle`]. With the stop
    /// flag set, the cycle ends with `Err(Interrupted)` at the next stage or credential batch
    /// boundary: what was applied stays applied, the cursor is not advanced.
    pub fn cycle(
        &mut self,
        full: bool,
        progress: ProgressFn<'_>,
    ) -> Result<CycleReport, SyncError> {
        let mode = if full { "full" } else { "incremental" };
        let mut report = CycleReport::new(mode, Timestamp::now(), 0);
        let result = self.run_cycle(full, progress, &mut report);
        if result.is_err() {
            report.finished_at = Timestamp::now();
        }
        let record = match &result {
            Ok(()) => LastCycle::from_report(&report, report.ok, None),
            Err(SyncError::Interrupted) => {
                let domain = &self.config.source.netbios_domain;
                self.emit(
                    id::PROGRESS,
                    Level::Info,
                    format!(
                        "password sync cycle for domain {domain} stopped by the caller ({} applied, {} already current, {} failed so far); what was applied stays applied, the cursor was not advanced and the next cycle resumes from it",
                        report.applied, report.stale, report.failed
                    ),
                    json!({ "domain": domain, "mode": report.mode, "applied": report.applied, "stale": report.stale, "failed": report.failed }),
                );
                LastCycle::from_report(&report, false, Some(STOPPED_BY_CALLER.into()))
            }
            Err(e) => {
                let mut nothing = CycleReport::new(report.mode, report.started_at, 0);
                nothing.finished_at = report.finished_at;
                LastCycle::from_report(&nothing, false, Some(e.to_string()))
            }
        };
        let record = serde_json::to_string(&record).expect("the record serializes");
        if let Err(e) = self.state.put(LAST_CYCLE_KEY, &record) {
            tracing::warn!("the last cycle's outcome could not be stored: {e}");
        }
        result.map(|()| report)
    }

    fn run_cycle(
        &mut self,
        full: bool,
        progress: ProgressFn<'_>,
        report: &mut CycleReport,
    ) -> Result<(), SyncError> {
        self.check_fips()?;
        let cursor: Option<ReplicationCursor> = if full {
            None
        } else {
            match self.state.get(CURSOR_KEY)? {
                Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
                    SyncError::Setup(format!(
                        "the stored replication cursor is unreadable ({e}); run a full sync"
                    ))
                })?),
                None => None,
            }
        };
        let is_full = cursor.is_none();
        let mode = if is_full { "full" } else { "incremental" };
        report.mode = mode;
        let domain = self.config.source.netbios_domain.clone();
        if is_full {
            self.emit(
                id::FULL_SYNC_STARTED,
                Level::Info,
                "full password sync started",
                serde_json::Value::Null,
            );
            self.emit(
                id::FULL_SYNC_STARTED_DOMAIN,
                Level::Info,
                format!("full password sync started for domain {domain}"),
                json!({ "domain": domain }),
            );
        } else {
            self.emit(
                id::BATCH_START,
                Level::Info,
                format!("password sync cycle started for domain {domain}"),
                json!({ "domain": domain }),
            );
        }

        progress("scope", 0, 1);
        let in_scope = self
            .scope_users()
            .map_err(|e| self.domain_failure(is_full, e))?;
        progress("scope", in_scope.len() as u64, in_scope.len() as u64);
        report.in_scope = in_scope.len() as u64;
        self.check_stop()?;
        let by_guid: HashMap<[u8; 16], &DirectoryUser> =
            in_scope.iter().map(|u| (u.object_guid.0, u)).collect();

        progress("replicate", 0, 1);
        let drsr_cfg = self.drsr_config()?;
        let batch = self.config.sync.batch_size;
        // Progress after every GetNCChanges batch (total 0: not known yet), so a caller can stop
        // a long first replication between batches instead of waiting for all of it.
        let stop = self.stop.clone();
        let replicated = self.rt.block_on(async {
            let mut client = DrsrClient::connect(&drsr_cfg).await?;
            let mut all = Vec::new();
            let result = client
                .replicate_domain_with(cursor.as_ref(), batch, &mut |accounts| {
                    all.extend(accounts);
                    progress("replicate", all.len() as u64, 0);
                    if stop.load(Ordering::SeqCst) {
                        return Err(DrsrError::Stopped);
                    }
                    Ok(())
                })
                .await;
            let _ = client.close().await;
            result.map(|next| (all, next))
        });
        let (accounts, next_cursor) = match replicated {
            Err(DrsrError::Stopped) => return Err(SyncError::Interrupted),
            other => other.map_err(|e| self.domain_failure(is_full, e.into()))?,
        };
        progress("replicate", accounts.len() as u64, accounts.len() as u64);
        self.check_stop()?;

        // Users first, so every credential finds its user. Users the tenant had disabled
        // (out of scope until now) may have changed their password meanwhile: like new users,
        // their current password is fetched below.
        // One read of the tenant's users serves both this and the out-of-scope pass below:
        // provisioning only touches in-scope users, which that pass skips.
        let tenant_users = self
            .tenant
            .users()
            .map_err(|e| self.domain_failure(is_full, e.into()))?;
        let was_disabled: HashSet<&str> = tenant_users
            .iter()
            .filter(|u| u.origin == Origin::Synced && !u.enabled)
            .filter_map(|u| u.source_anchor.as_deref())
            .collect();
        let mut created = HashSet::new();
        let specs: Vec<SyncedUserSpec> = in_scope
            .iter()
            .map(|user| SyncedUserSpec {
                source_anchor: user.source_anchor(),
                user_principal_name: user.user_principal_name.clone(),
                display_name: user.display_name.clone(),
                enabled: user.enabled(),
            })
            .collect();
        let outcomes = self
            .tenant
            .provision_synced_users(&specs)
            .map_err(|e| self.domain_failure(is_full, e.into()))?;
        for (user, outcome) in in_scope.iter().zip(outcomes) {
            let outcome = match outcome {
                Ok(o) => o,
                Err(e) if tenant_down(&e) => return Err(self.domain_failure(is_full, e.into())),
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
                created.insert(user.object_guid.0);
            }
        }
        progress("provision", in_scope.len() as u64, in_scope.len() as u64);
        report.disabled = self
            .disable_out_of_scope(&in_scope, tenant_users)
            .map_err(|e| self.domain_failure(is_full, e))?;
        self.check_stop()?;

        let mut pending: Vec<Pending> = Vec::new();
        let mut seen = HashSet::new();
        for account in accounts {
            if let Some(user) = by_guid.get(&account.guid.0) {
                if account.password_replicated {
                    seen.insert(account.guid.0);
                    let changed_at = change_time(&account, user);
                    pending.push(Pending {
                        user,
                        account,
                        changed_at,
                    });
                }
            }
        }
        // New or back in scope without a password change in this window (moved into an OU,
        // added to a group, re-enabled): fetch their current password; due retries likewise.
        let mut fetch: Vec<[u8; 16]> = created
            .iter()
            .filter(|g| !seen.contains(*g))
            .copied()
            .collect();
        for guid in self.state.due_retries(Timestamp::now())? {
            if let Some(g) = phsync_drsr::Guid::parse(&guid) {
                if by_guid.contains_key(&g.0) && !seen.contains(&g.0) && !fetch.contains(&g.0) {
                    fetch.push(g.0);
                }
            }
        }
        if !fetch.is_empty() {
            let fetched = self.fetch_users(&drsr_cfg, &fetch);
            for (guid, result) in fetch.iter().zip(fetched) {
                let user = by_guid[guid];
                match result {
                    Ok(account) => {
                        let changed_at = change_time(&account, user);
                        pending.push(Pending {
                            user,
                            account,
                            changed_at,
                        });
                    }
                    Err(e) => {
                        let d = self.diagnostics(
                            user,
                            SyncStatus::Error,
                            format!("could not read the password from the DC: {e}"),
                            None,
                            None,
                        );
                        self.fail(report, d)?;
                    }
                }
            }
        }
        pending.sort_by_key(|p| p.changed_at);
        report.changes = pending.len() as u64;
        self.deliver(pending, report, progress)?;

        // A stop requested during the last batch: everything was delivered, but the caller
        // asked to stop, so the cycle ends as stopped (the cursor stays; nothing is lost).
        self.check_stop()?;
        // Everything the cursor covers is now in the tenant or in the retry queue.
        let cursor_json = serde_json::to_string(&next_cursor).expect("cursor serializes");
        if let Err(e) = self.state.put(CURSOR_KEY, &cursor_json) {
            self.emit(
                id::CYCLE_STATE_NOT_STORED,
                Level::Error,
                format!("the replication cursor could not be stored: {e}"),
                serde_json::Value::Null,
            );
            return Err(e.into());
        }
        report.finished_at = Timestamp::now();
        report.ok = report.failed == 0;
        let summary = json!({
            "mode": mode, "in_scope": report.in_scope, "changes": report.changes, "applied": report.applied,
            "stale": report.stale, "filtered": report.filtered, "disabled": report.disabled,
            "failed": report.failed, "retry_queued": report.retry_queued,
        });
        let _ = self.state.prune(report.finished_at);
        if is_full {
            self.emit(
                id::FULL_SYNC_DONE_DOMAIN,
                Level::Info,
                format!("full password sync finished for domain {domain}"),
                summary.clone(),
            );
            self.emit(
                id::FULL_SYNC_DONE,
                Level::Info,
                "full password sync finished",
                summary,
            );
        } else {
            self.emit(
                id::BATCH_END,
                Level::Info,
                format!("password sync cycle finished for domain {domain}"),
                summary,
            );
        }
        Ok(())
    }

    /// Synced users the tenant still lets sign in although they left the scope (disabled,
    /// moved, deleted, or no longer a plain user): disable them.
    fn disable_out_of_scope(
        &self,
        in_scope: &[DirectoryUser],
        tenant_users: Vec<phsync_tenant::User>,
    ) -> Result<u64, SyncError> {
        let anchors: HashSet<String> = in_scope.iter().map(|u| u.source_anchor()).collect();
        let mut disabled = 0;
        for user in tenant_users {
            let Some(anchor) = &user.source_anchor else {
                continue;
            };
            if user.origin == Origin::Synced && user.enabled && !anchors.contains(anchor) {
                self.tenant.provision_synced_user(&SyncedUserSpec {
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

    /// Read single users' current passwords (EXOP_REPL_OBJ), one connection for all.
    fn fetch_users(
        &self,
        drsr_cfg: &DrsrConfig,
        guids: &[[u8; 16]],
    ) -> Vec<Result<ReplicatedAccount, SyncError>> {
        self.rt.block_on(async {
            let mut client = match DrsrClient::connect(drsr_cfg).await {
                Ok(c) => c,
                Err(e) => {
                    let msg = e.to_string();
                    return guids
                        .iter()
                        .map(|_| Err(SyncError::Setup(msg.clone())))
                        .collect();
                }
            };
            let mut out = Vec::with_capacity(guids.len());
            for g in guids {
                out.push(
                    client
                        .replicate_user(&guid_string(g))
                        .await
                        .map_err(SyncError::from),
                );
            }
            let _ = client.close().await;
            out
        })
    }

    fn diagnostics(
        &self,
        user: &DirectoryUser,
        status: SyncStatus,
        reason: String,
        changed_at: Option<Timestamp>,
        applied_at: Option<Timestamp>,
    ) -> UserDiagnostics {
        UserDiagnostics {
            object_guid: guid_string(&user.object_guid.0),
            sam_account_name: user.sam_account_name.clone(),
            user_principal_name: user.user_principal_name.clone(),
            source_anchor: user.source_anchor(),
            last_attempt_at: Timestamp::now(),
            status,
            reason,
            onprem_changed_at: changed_at,
            applied_at,
            retry: RetryState::None,
        }
    }

    fn succeed(&self, report: &mut CycleReport, d: UserDiagnostics) -> Result<(), SyncError> {
        let was_queued = !matches!(
            self.state.user(&d.object_guid)?.map(|x| x.retry),
            None | Some(RetryState::None)
        );
        self.state.record(&d)?;
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

    fn fail(&self, report: &mut CycleReport, mut d: UserDiagnostics) -> Result<(), SyncError> {
        self.state.record(&d)?;
        d.retry = self.state.queue_retry(&d.object_guid, Timestamp::now())?;
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

    /// Filter, digest (batch) and apply pending passwords in the order given.
    fn deliver(
        &self,
        pending: Vec<Pending>,
        report: &mut CycleReport,
        progress: ProgressFn<'_>,
    ) -> Result<(), SyncError> {
        let mut to_send: Vec<(Pending, NtHash)> = Vec::new();
        for mut p in pending {
            let must_change = p.user.must_change_password() || p.account.pwd_last_set == Some(0);
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
            if must_change && !self.config.sync.sync_temporary_passwords {
                let d = self.diagnostics(p.user, SyncStatus::FilteredByTarget, "the user must change the password at next logon; temporary passwords are not synced (sync_temporary_passwords = false)".into(), Some(p.changed_at), None);
                self.state.record(&d)?;
                report.filtered += 1;
                report.users.push(d);
                continue;
            }
            to_send.push((p, nt));
        }
        let nts: Vec<&NtHash> = to_send.iter().map(|(_, nt)| nt).collect();
        let digests = new_random_digests(&nts).map_err(|e| SyncError::Setup(e.to_string()))?;
        let total = to_send.len() as u64;
        let apply_delay = std::env::var("PHSYNC_FAULT_APPLY_DELAY_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok());
        let creds: Vec<SyncedCredential> = to_send
            .iter()
            .zip(digests)
            .map(|((p, _nt), digest)| SyncedCredential {
                source_anchor: p.user.source_anchor(),
                digest: Zeroizing::new(digest.encode().to_string()),
                changed_at: p.changed_at,
                force_change_at_next_sign_in: p.user.must_change_password()
                    || p.account.pwd_last_set == Some(0),
            })
            .collect();
        // Chronological order holds across batches: each batch is applied in order, and
        // the next is sent only after the previous one's results are in.
        let batch = if apply_delay.is_some() {
            1
        } else {
            CREDENTIAL_BATCH
        };
        let mut done = 0u64;
        for (pendings, creds) in to_send.chunks(batch).zip(creds.chunks(batch)) {
            // Between batches: the caller never stores the cursor past what was skipped.
            self.check_stop()?;
            let results = self.tenant.apply_synced_credentials(creds)?;
            for (((p, _nt), cred), result) in pendings.iter().zip(creds).zip(results) {
                let result = match result {
                    // The user vanished from the tenant since provisioning (deleted by an
                    // administrator, or a replica behind): provision it and retry once.
                    Err(CloudError::AnchorNotFound(_)) => self
                        .tenant
                        .provision_synced_user(&SyncedUserSpec {
                            source_anchor: p.user.source_anchor(),
                            user_principal_name: p.user.user_principal_name.clone(),
                            display_name: p.user.display_name.clone(),
                            enabled: p.user.enabled(),
                        })
                        .and_then(|_| self.tenant.apply_synced_credential(cred)),
                    other => other,
                };
                self.record_credential(p, cred.force_change_at_next_sign_in, result, report)?;
                done += 1;
                progress("credentials", done, total);
                if let Some(ms) = apply_delay {
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                }
            }
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
                    Some(Timestamp::now()),
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
            Err(e) if tenant_down(&e) => {
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

    /// Sync one user now (by sAMAccountName, DOMAIN\sam, UPN, DN or GUID).
    pub fn sync_user(&mut self, name: &str) -> Result<UserDiagnostics, SyncError> {
        self.check_fips()?;
        let scope = self.config.sync.scope();
        let (user, in_scope) = self.rt.block_on(async {
            let mut dir = self.config.source.connect_directory().await?;
            let user = match dir.resolve_user(name).await {
                Ok(u) => u,
                Err(phsync_directory::DirectoryError::UserNotFound { .. }) => {
                    dir.close().await;
                    return Err(SyncError::UserNotFound(name.to_string()));
                }
                Err(e) => {
                    dir.close().await;
                    return Err(e.into());
                }
            };
            let users = dir.users(&scope).await;
            dir.close().await;
            let in_scope = users?.iter().any(|u| u.object_guid == user.object_guid);
            Ok::<_, SyncError>((user, in_scope))
        })?;
        let mut report = CycleReport::new("user", Timestamp::now(), u64::from(in_scope));
        if !in_scope {
            let d = self.diagnostics(&user, SyncStatus::FilteredByTarget, "the user is out of the sync scope (disabled, outside the scoped OUs or groups, or not a plain user object)".into(), None, None);
            self.state.record(&d)?;
            if let Some(t) = self.tenant.user_by_anchor(&user.source_anchor())? {
                if t.enabled && t.origin == Origin::Synced {
                    self.tenant.provision_synced_user(&SyncedUserSpec {
                        source_anchor: user.source_anchor(),
                        user_principal_name: t.user_principal_name,
                        display_name: t.display_name,
                        enabled: false,
                    })?;
                }
            }
            return Ok(d);
        }
        self.tenant.provision_synced_user(&SyncedUserSpec {
            source_anchor: user.source_anchor(),
            user_principal_name: user.user_principal_name.clone(),
            display_name: user.display_name.clone(),
            enabled: user.enabled(),
        })?;
        let drsr_cfg = self.drsr_config()?;
        let account = self
            .fetch_users(&drsr_cfg, &[user.object_guid.0])
            .remove(0)?;
        let changed_at = change_time(&account, &user);
        self.deliver(
            vec![Pending {
                user: &user,
                account,
                changed_at,
            }],
            &mut report,
            &mut |_, _, _| {},
        )?;
        report
            .users
            .pop()
            .ok_or_else(|| SyncError::Setup("no result for the user".into()))
    }

    /// Diagnostics and recent history for one user.
    pub fn user_status(&self, name: &str) -> Result<Option<UserStatus>, SyncError> {
        Ok(match self.state.user(name)? {
            Some(user) => {
                let history = self.state.history(&user.object_guid, 20)?;
                Some(UserStatus { user, history })
            }
            None => None,
        })
    }

    /// Diagnostics of every user the engine has seen.
    pub fn all_user_status(&self) -> Result<Vec<UserDiagnostics>, SyncError> {
        Ok(self.state.users()?)
    }

    /// The last cycle's outcome (completed, failed or stopped); `None` before the first.
    pub fn last_cycle(&self) -> Result<Option<LastCycle>, SyncError> {
        Ok(self
            .state
            .get(LAST_CYCLE_KEY)?
            .and_then(|t| LastCycle::parse_stored(&t)))
    }

    pub fn heartbeat(&self) {
        self.emit(
            id::HEARTBEAT,
            Level::Info,
            "password hash sync is running",
            serde_json::Value::Null,
        );
    }

    pub fn started(&self) {
        self.emit(
            id::START,
            Level::Info,
            "password hash sync started",
            serde_json::Value::Null,
        );
    }

    pub fn stopped(&self) {
        self.emit(
            id::STOP,
            Level::Info,
            "password hash sync stopped",
            serde_json::Value::Null,
        );
    }
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
