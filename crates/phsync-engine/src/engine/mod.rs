//! The engine: one cycle is a pipeline of stages, each in its own module.
//!
//! - [`scope`]: the in-scope users from the directory;
//! - [`replicate`]: the password changes from the DC since the stored cursor;
//! - [`provision`]: the tenant's users follow the scope (created, updated, disabled), and
//!   the tenant's policy setting follows the config;
//! - [`retry`]: the users whose current password must be fetched (new, back in scope, due
//!   retries), and the recording of each user's outcome with its retry state;
//! - [`deliver`]: filter, digest and apply the passwords in on-prem chronological order;
//! - [`stream`]: how the stages meet while replication runs: each replicated batch is
//!   delivered before the next is requested once the scope is in, so a full sync's memory
//!   does not grow with the domain.
//!
//! The cursor is stored only when everything it covers is in the tenant or in the retry
//! queue. The engine reaches the directory, the DC, the tenant and the clock only through
//! [`crate::ports`] and [`phsync_tenant::CloudTenant`]/[`Clock`], so the rules are
//! unit-tested against fakes (see `tests` below).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::ScopedJoinHandle;

use serde_json::json;

use crate::events::{id, EventLog, Level};
use crate::ports::live::{DrsrSource, LdapDirectory};
use crate::ports::{Cursor, DirectorySource, ReplicationSource};
use crate::settings::Settings;
use crate::state::{StateStore, UserDiagnostics};
use crate::{fips, SyncError};
use phsync_directory::DirectoryUser;
use phsync_drsr::{FileTime, ReplicatedAccount};
use phsync_tenant::{Clock, CloudTenant, SystemClock, Timestamp};

mod changes;
mod deliver;
mod leaks;
mod provision;
mod replicate;
mod report;
mod retry;
mod run;
mod scope;
mod stream;
#[cfg(test)]
mod tests;
mod user;

use replicate::ReplicateError;
use report::ms_since;
pub use report::{CycleReport, LastCycle, StageTimings, UserStatus, STOPPED_BY_CALLER};
pub use run::{
    ChangeStats, NotificationStatus, RunHooks, DEFAULT_COALESCE, DIRSYNC_POLL, HEARTBEAT_EVERY,
    RECONNECT_MAX, RECONNECT_MIN, STALE_AFTER,
};
use std::time::Instant;

/// Credentials per tenant call: one HTTPS request for a remote tenant (the service takes at
/// most `phsync_tenant::wire::MAX_BATCH`). A stop request takes effect between batches (the
/// batch in flight is applied and recorded first).
pub const CREDENTIAL_BATCH: usize = 200;

const CURSOR_KEY: &str = "replication_cursor";
const LAST_CYCLE_KEY: &str = "last_cycle";
const EVENT_LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;
const EVENT_LOG_FILES: usize = 10;

/// Progress: (stage, done, total). Called on the caller's thread only.
pub type ProgressFn<'a> = &'a mut dyn FnMut(&str, u64, u64);

/// The tenant's actor name for what the engine does (its audit entries).
pub(crate) const TENANT_ACTOR: &str = "sync-agent";

/// One password to deliver.
struct Pending<'a> {
    user: &'a DirectoryUser,
    account: ReplicatedAccount,
    changed_at: Timestamp,
}

impl Pending<'_> {
    /// "User must change password at next logon", as the directory or the DC says it.
    fn must_change(&self) -> bool {
        self.user.must_change_password() || self.account.pwd_last_set == Some(FileTime::UNSET)
    }
}

/// The cycle's scope, provisioned.
pub(super) struct Scoped {
    /// The in-scope users this cycle deals with: all of them after a full read; after a
    /// read of the changes, those changed, and those the replication or the retry queue
    /// names.
    users: Vec<DirectoryUser>,
    /// Created or back in scope now: their current password is fetched.
    back_in_scope: std::collections::HashSet<phsync_directory::Guid>,
    /// What to store for the next cycle's read of the changes (`None`: no change tracking).
    mark: Option<scope::StoredScopeMark>,
    /// A read of the changes: users in scope now that were not, and users no longer in it.
    entered: Vec<phsync_directory::Guid>,
    left: Vec<phsync_directory::Guid>,
    /// The whole scope was read (the stored scope is replaced by it).
    full: bool,
}

/// The parts an engine runs on. [`Engine::open`] builds the live ones from settings; tests
/// pass fakes.
pub struct Parts {
    pub directory: Box<dyn DirectorySource + Send>,
    pub replication: Box<dyn ReplicationSource + Send>,
    /// `None`: opened from the settings' tenant target at the first cycle.
    pub tenant: Option<Box<dyn CloudTenant>>,
    pub clock: Arc<dyn Clock>,
}

pub struct Engine {
    settings: Arc<Settings>,
    directory: Box<dyn DirectorySource + Send>,
    replication: Box<dyn ReplicationSource + Send>,
    tenant: OnceLock<Box<dyn CloudTenant>>,
    clock: Arc<dyn Clock>,
    state: StateStore,
    events: EventLog,
    stop: Arc<AtomicBool>,
    credential_batch: usize,
    /// Password changes held while the scope is read ([`stream::AHEAD_OF_SCOPE`]).
    ahead_of_scope: usize,
    /// The tenant's policy setting was brought in line with the config (once per engine).
    policy_checked: bool,
    /// While [`Engine::run`] runs: the in-scope users as last seen, so that a notified
    /// change that left the password alone is not replicated (see `changes`).
    known: Option<changes::Known>,
}

impl Engine {
    /// Load the config file and open the state store and the event log. Opening changes
    /// nothing outside the engine's own state directory: the tenant is opened (and its
    /// policy setting aligned) by the first cycle, so `phsync status` works without it.
    pub fn open(config_path: &Path) -> Result<Engine, SyncError> {
        Engine::with_settings(Settings::load(config_path)?)
    }

    /// An engine over the live directory (LDAP), DC (MS-DRSR) and tenant of `settings`.
    pub fn with_settings(settings: Settings) -> Result<Engine, SyncError> {
        let settings = Arc::new(settings);
        // One runtime each: the scope is read on its own thread while replication runs.
        let runtime = |builder: &mut tokio::runtime::Builder| {
            builder
                .enable_all()
                .build()
                .map(Arc::new)
                .map_err(|e| SyncError::Host(format!("cannot start the async runtime: {e}")))
        };
        // The directory's connection task runs on a worker of its own, beside the reader that
        // turns entries into users: an unpaged search (Samba, see `RootDse::unpaged_reads_pay`)
        // has no flow control, and a reader sharing the connection's thread would let the
        // whole answer pile up unread.
        let directory_runtime =
            runtime(tokio::runtime::Builder::new_multi_thread().worker_threads(1))?;
        let drsr_runtime = runtime(&mut tokio::runtime::Builder::new_current_thread())?;
        // The directory sees the engine's stop flag: a stop ends a long scope read too.
        let stop = Arc::new(AtomicBool::new(false));
        let parts = Parts {
            directory: Box::new(LdapDirectory::new(
                settings.clone(),
                directory_runtime,
                stop.clone(),
            )),
            replication: Box::new(DrsrSource::new(settings.clone(), drsr_runtime)),
            tenant: None,
            clock: Arc::new(SystemClock),
        };
        let mut engine = Engine::with_parts(settings, parts)?;
        engine.stop = stop;
        Ok(engine)
    }

    /// An engine over the given parts (fakes in tests).
    pub fn with_parts(settings: Arc<Settings>, parts: Parts) -> Result<Engine, SyncError> {
        let dir = &settings.state_dir;
        let state = StateStore::open(dir)?;
        let events = EventLog::open(dir, EVENT_LOG_MAX_BYTES, EVENT_LOG_FILES).map_err(|e| {
            SyncError::EventLog {
                dir: dir.display().to_string(),
                detail: e.to_string(),
            }
        })?;
        let tenant = OnceLock::new();
        if let Some(t) = parts.tenant {
            let _ = tenant.set(t);
        }
        Ok(Engine {
            settings,
            directory: parts.directory,
            replication: parts.replication,
            tenant,
            clock: parts.clock,
            state,
            events,
            stop: Arc::new(AtomicBool::new(false)),
            credential_batch: CREDENTIAL_BATCH,
            ahead_of_scope: stream::AHEAD_OF_SCOPE,
            policy_checked: false,
            known: None,
        })
    }

    /// The validated settings this engine runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// Set from another thread (a signal handler) to stop after the user in flight.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Credentials per tenant call (default [`CREDENTIAL_BATCH`], at least 1). Smaller
    /// batches let a stop take effect sooner; tests use 1 to act between credentials.
    pub fn set_credential_batch(&mut self, credentials: usize) {
        self.credential_batch = credentials.clamp(1, CREDENTIAL_BATCH);
    }

    /// Hold at most `changes` password changes ahead of the scope read (tests: a small
    /// domain shows the wait).
    #[cfg(test)]
    pub(crate) fn set_ahead_of_scope(&mut self, changes: usize) {
        self.ahead_of_scope = changes.max(1);
    }

    /// The tenant, opened at first use.
    fn tenant(&self) -> Result<&dyn CloudTenant, SyncError> {
        if let Some(t) = self.tenant.get() {
            return Ok(t.as_ref());
        }
        let t = phsync_tenant::open_target(&self.settings.tenant, TENANT_ACTOR)?;
        Ok(self.tenant.get_or_init(|| t).as_ref())
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
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
        if fips::host_in_fips_mode() && !self.settings.rules.allow_non_fips_crypto {
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

    /// A DC or tenant outage: event 611 (and 621 for a full sync), then the error.
    fn domain_failure(&self, full: bool, error: SyncError) -> SyncError {
        let domain = &self.settings.domain;
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

    /// `Err(Interrupted)` once the stop flag is set.
    fn check_stop(&self) -> Result<(), SyncError> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(SyncError::Interrupted);
        }
        Ok(())
    }

    /// The scope read failed: a stop before it was read leaves the scope as last stored;
    /// anything else is a domain failure (events 611, and 621 for a full sync).
    fn scope_failed(&self, is_full: bool, e: SyncError, report: &mut CycleReport) -> SyncError {
        match e {
            SyncError::Interrupted => {
                report.in_scope = self.state.scope_len().unwrap_or(0);
                e
            }
            other => self.domain_failure(is_full, other),
        }
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
        let mut report = CycleReport::new(mode, self.now(), 0);
        let result = self.run_cycle(full, progress, &mut report);
        if result.is_err() {
            report.finished_at = self.now();
        }
        let record = match &result {
            Ok(()) => LastCycle::from_report(&report, report.ok, None),
            Err(SyncError::Interrupted) => {
                let domain = &self.settings.domain;
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

    /// The stages of one cycle, in order.
    fn run_cycle(
        &mut self,
        full: bool,
        progress: ProgressFn<'_>,
        report: &mut CycleReport,
    ) -> Result<(), SyncError> {
        self.check_fips()?;
        let cursor = if full {
            None
        } else {
            self.state.get(CURSOR_KEY)?.map(Cursor)
        };
        let is_full = cursor.is_none();
        report.mode = if is_full { "full" } else { "incremental" };
        self.cycle_started(is_full);
        self.align_tenant_policy()
            .map_err(|e| self.domain_failure(is_full, e))?;

        // Scope and replication overlap: a directory read over the network runs on a
        // thread of its own while replication runs here, and the replicated passwords are
        // delivered as they arrive once the scope is in (see `stream`; progress is reported
        // on the caller's thread only). An in-memory directory is read first, in line.
        let since = self.scope_since(is_full)?;
        progress("scope", 0, 1);
        let mut stream = stream::Stream::default();
        let replicated = if self.directory.worth_a_thread() {
            let directory = std::mem::replace(&mut self.directory, Box::new(scope::Detached));
            let this: &Engine = self;
            let (directory, replicated) = std::thread::scope(|s| {
                let mut reader = Some(s.spawn(move || {
                    let started = Instant::now();
                    let read = scope::read_scope(directory.as_ref(), since.as_ref());
                    (directory, read, ms_since(started))
                }));
                let mut directory = None;
                // The scope read is in: its result goes to the stream, the directory back.
                let mut join = |reader: ScopedJoinHandle<'_, _>,
                                stream: &mut stream::Stream,
                                report: &mut CycleReport| {
                    let read = match reader.join() {
                        Ok((dir, read, scope_ms)) => {
                            directory = Some(dir);
                            report.timings.scope_ms = scope_ms;
                            read
                        }
                        Err(_) => Err(SyncError::Host(
                            "internal: the scope reader panicked".into(),
                        )),
                    };
                    this.scope_read_in(stream, read, report);
                };
                let started = Instant::now();
                let mut beside = 0u64;
                let replicated =
                    this.replicate(cursor.as_ref(), progress, &mut |batch, progress| {
                        let t = Instant::now();
                        stream.held.extend(batch);
                        if reader.as_ref().is_some_and(|r| {
                            r.is_finished() || stream.must_wait(this.ahead_of_scope)
                        }) {
                            join(reader.take().expect("checked"), &mut stream, report);
                        }
                        if stream.read_failed() {
                            return Err(SyncError::Interrupted);
                        }
                        let fed = this.feed(&mut stream, report, progress, is_full);
                        beside += ms_since(t);
                        fed
                    });
                report.timings.replicate_ms = ms_since(started).saturating_sub(beside);
                if let Some(reader) = reader.take() {
                    join(reader, &mut stream, report);
                }
                (directory, replicated)
            });
            if let Some(directory) = directory {
                self.directory = directory;
            }
            replicated
        } else {
            let started = Instant::now();
            let read = scope::read_scope(self.directory.as_ref(), since.as_ref());
            report.timings.scope_ms = ms_since(started);
            if let Err(e) = read {
                return Err(self.scope_failed(is_full, e, report));
            }
            self.check_stop()?;
            self.scope_read_in(&mut stream, read, report);
            let started = Instant::now();
            let mut beside = 0u64;
            let this: &Engine = self;
            let replicated = this.replicate(cursor.as_ref(), progress, &mut |batch, progress| {
                let t = Instant::now();
                stream.held.extend(batch);
                let fed = this.feed(&mut stream, report, progress, is_full);
                beside += ms_since(t);
                fed
            });
            report.timings.replicate_ms = ms_since(started).saturating_sub(beside);
            replicated
        };
        if let Some(Err(e)) = stream.read.take_if(|read| read.is_err()) {
            return Err(self.scope_failed(is_full, e, report));
        }
        let next_cursor = match replicated {
            Ok(next) => next,
            Err(ReplicateError::Consumer(e)) => return Err(e),
            Err(ReplicateError::Source(e)) => {
                return Err(match e {
                    SyncError::Interrupted
                    | SyncError::CursorUnreadable(_)
                    | SyncError::Config(_) => e,
                    other => self.domain_failure(is_full, other),
                })
            }
        };
        self.check_stop()?;
        self.provision_read(&mut stream, report, progress, is_full, true)?;
        self.deliver_held(&mut stream, report, progress)?;
        self.deliver_fetched(&stream, report, progress)?;
        let Some((scoped, _)) = stream.scoped.take() else {
            return Err(SyncError::Host(
                "internal: the scope was not provisioned after replication".into(),
            ));
        };
        let in_scope = &scoped.users;

        // A stop requested during the last batch: everything was delivered, but the caller
        // asked to stop, so the cycle ends as stopped (the cursor stays; nothing is lost).
        self.check_stop()?;
        // Everything the cursor covers is now in the tenant or in the retry queue.
        let started = Instant::now();
        let stored = self.store_cycle_state(&next_cursor, &scoped, report);
        report.timings.state_ms += ms_since(started);
        if let Err(e) = stored {
            self.emit(
                id::CYCLE_STATE_NOT_STORED,
                Level::Error,
                format!("the replication cursor could not be stored: {e}"),
                serde_json::Value::Null,
            );
            return Err(e.into());
        }
        report.finished_at = self.now();
        report.ok = report.failed == 0;
        if let Some(known) = self.known.as_mut() {
            if scoped.full {
                known.reset(in_scope);
            } else {
                // A read of the scope's changes: follow them; users it did not name are as
                // they were (or unknown, which only costs a replication when notified).
                for user in in_scope {
                    known.update(user);
                }
                for guid in &scoped.left {
                    known.forget(guid);
                }
            }
        }
        let _ = self.state.prune(report.finished_at);
        let t = &report.timings;
        tracing::debug!(
            scope_ms = t.scope_ms,
            replicate_ms = t.replicate_ms,
            provision_ms = t.provision_ms,
            digest_ms = t.digest_ms,
            tenant_ms = t.tenant_ms,
            state_ms = t.state_ms,
            "cycle stage timings"
        );
        self.cycle_finished(is_full, report);
        Ok(())
    }

    /// The cursor, the scope mark and the stored scope, in one state transaction: the next
    /// cycle starts from all three or from none.
    fn store_cycle_state(
        &self,
        cursor: &Cursor,
        scoped: &Scoped,
        report: &mut CycleReport,
    ) -> Result<(), crate::state::StateError> {
        let batch = self.state.batch()?;
        self.state.put(CURSOR_KEY, &cursor.0)?;
        if scoped.full {
            let guids: Vec<String> = scoped
                .users
                .iter()
                .map(|u| u.object_guid.to_string())
                .collect();
            self.state.replace_scope(guids.iter().map(String::as_str))?;
        } else {
            let entered: Vec<String> = scoped.entered.iter().map(|g| g.to_string()).collect();
            let left: Vec<String> = scoped.left.iter().map(|g| g.to_string()).collect();
            self.state.update_scope(
                entered.iter().map(String::as_str),
                left.iter().map(String::as_str),
            )?;
            report.in_scope = self.state.scope_len()?;
        }
        match &scoped.mark {
            Some(mark) => self.state.put(
                scope::SCOPE_MARK_KEY,
                &serde_json::to_string(mark).expect("a scope mark serializes"),
            )?,
            None => self.state.delete(scope::SCOPE_MARK_KEY)?,
        }
        batch.commit()
    }

    fn cycle_started(&self, is_full: bool) {
        let domain = &self.settings.domain;
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
    }

    fn cycle_finished(&self, is_full: bool, report: &CycleReport) {
        let domain = &self.settings.domain;
        let summary = json!({
            "mode": report.mode, "in_scope": report.in_scope, "changes": report.changes, "applied": report.applied,
            "stale": report.stale, "filtered": report.filtered, "disabled": report.disabled,
            "failed": report.failed, "retry_queued": report.retry_queued,
        });
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
