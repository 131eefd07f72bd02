//! Stages 3 to 5 fed while replication runs: the scope, read on a thread of its own, meets
//! the replicated passwords as they arrive. Until the scope is read, the password changes
//! are held (slimmed); once a whole-scope read is in and provisioned, each replication batch
//! is delivered before the next one is requested. A full sync thus holds at most
//! [`AHEAD_OF_SCOPE`] passwords (past that, replication waits for the scope), never the
//! whole domain's, and its memory stays flat as the domain grows. A read of the scope's
//! changes needs every replicated change to know whom to resolve, so an incremental cycle
//! delivers once replication is done (its changes are few).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use phsync_directory::Guid;
use phsync_drsr::ReplicatedAccount;

use super::scope::{ScopeRead, StoredScopeMark};
use super::{ms_since, CycleReport, Engine, ProgressFn, Scoped};
use crate::SyncError;

/// Password changes replicated ahead of the scope read that are held before replication
/// waits for the scope: enough for the scope and replication of a 10,000-user domain to
/// overlap entirely (the DC serves both at once), few enough to bound a large one.
pub(super) const AHEAD_OF_SCOPE: usize = 10_000;

/// One cycle's scope and replicated passwords on their way to delivery.
#[derive(Default)]
pub(super) struct Stream {
    /// The scope as read, until provisioned (or the read's error).
    pub read: Option<Result<ScopeRead, SyncError>>,
    /// The provisioned scope, and its users' indexes by objectGUID.
    pub scoped: Option<(Scoped, HashMap<Guid, usize>)>,
    /// Password changes replicated before the scope was provisioned.
    pub held: Vec<ReplicatedAccount>,
    /// The users whose replicated password went to delivery.
    pub seen: HashSet<Guid>,
}

impl Stream {
    /// Whether replication must wait for the scope read before it goes on: at most `limit`
    /// changes ([`AHEAD_OF_SCOPE`]) are held ahead of it.
    pub fn must_wait(&self, limit: usize) -> bool {
        self.read.is_none() && self.scoped.is_none() && self.held.len() >= limit
    }

    /// The read failed: replication stops, and the read's error is the cycle's.
    pub fn read_failed(&self) -> bool {
        matches!(self.read, Some(Err(_)))
    }
}

impl Engine {
    /// The scope read is in: the cycle now knows how many users it covers (a stopped or
    /// failed cycle says so too). A read of the changes leaves the stored scope's size until
    /// this cycle stores its changes.
    pub(super) fn scope_read_in(
        &self,
        stream: &mut Stream,
        read: Result<ScopeRead, SyncError>,
        report: &mut CycleReport,
    ) {
        match &read {
            Ok(ScopeRead::Full { users, .. }) => report.in_scope = users.len() as u64,
            Ok(ScopeRead::Changes { .. }) | Err(_) => {
                report.in_scope = self.state.scope_len().unwrap_or(report.in_scope)
            }
        }
        stream.read = Some(read);
    }

    /// Provision the scope once it is read: a whole-scope read at once, a read of the
    /// changes when replication is done (`replication_done`).
    pub(super) fn provision_read(
        &self,
        stream: &mut Stream,
        report: &mut CycleReport,
        progress: ProgressFn<'_>,
        is_full: bool,
        replication_done: bool,
    ) -> Result<(), SyncError> {
        if stream.scoped.is_some() {
            return Ok(());
        }
        let read = match stream.read.take() {
            Some(Ok(read)) => read,
            other => {
                stream.read = other;
                return Ok(());
            }
        };
        let started = Instant::now();
        let scoped = match read {
            ScopeRead::Full { users, mark } => {
                report.scope_read = "full";
                progress("scope", users.len() as u64, users.len() as u64);
                let back_in_scope = self.provision(&users, report, progress, is_full)?;
                Scoped {
                    users,
                    back_in_scope,
                    mark: mark.map(|mark| StoredScopeMark {
                        mark,
                        full_read_at: self.now().unix_micros() / 1_000_000,
                        scope: self.scope_fingerprint(),
                    }),
                    entered: Vec::new(),
                    left: Vec::new(),
                    full: true,
                }
            }
            read @ ScopeRead::Changes { .. } if !replication_done => {
                stream.read = Some(Ok(read));
                return Ok(());
            }
            ScopeRead::Changes {
                changes,
                mark,
                full_read_at,
            } => {
                report.scope_read = "changes";
                let scoped = self.provision_changes(changes, &stream.held, report)?;
                let n = scoped.users.len() as u64;
                progress("scope", n, n);
                Scoped {
                    mark: Some(StoredScopeMark {
                        mark,
                        full_read_at,
                        scope: self.scope_fingerprint(),
                    }),
                    ..scoped
                }
            }
        };
        report.timings.provision_ms += ms_since(started);
        let by_guid = scoped
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.object_guid, i))
            .collect();
        stream.scoped = Some((scoped, by_guid));
        self.check_stop()
    }

    /// While replication runs, after each batch is held: provision a whole-scope read once
    /// it is in, then deliver what is held.
    pub(super) fn feed(
        &self,
        stream: &mut Stream,
        report: &mut CycleReport,
        progress: ProgressFn<'_>,
        is_full: bool,
    ) -> Result<(), SyncError> {
        self.provision_read(stream, report, progress, is_full, false)?;
        self.deliver_held(stream, report, progress)
    }

    /// Deliver the held password changes of in-scope users, once the scope is provisioned.
    pub(super) fn deliver_held(
        &self,
        stream: &mut Stream,
        report: &mut CycleReport,
        progress: ProgressFn<'_>,
    ) -> Result<(), SyncError> {
        let Some((scoped, by_guid)) = &stream.scoped else {
            return Ok(());
        };
        if stream.held.is_empty() {
            return Ok(());
        }
        let accounts = std::mem::take(&mut stream.held);
        let pending = self.pend_replicated(&scoped.users, by_guid, accounts, &mut stream.seen);
        if pending.is_empty() {
            return Ok(());
        }
        report.changes += pending.len() as u64;
        self.deliver(pending, report, progress)
    }

    /// After replication: the current passwords fetched one by one (users new or back in
    /// scope without a change in this window, due retries), delivered last.
    pub(super) fn deliver_fetched(
        &self,
        stream: &Stream,
        report: &mut CycleReport,
        progress: ProgressFn<'_>,
    ) -> Result<(), SyncError> {
        let Some((scoped, by_guid)) = &stream.scoped else {
            return Err(SyncError::Host(
                "internal: the scope was not provisioned after replication".into(),
            ));
        };
        let pending = self.pend_fetched(
            &scoped.users,
            by_guid,
            &scoped.back_in_scope,
            &stream.seen,
            report,
        )?;
        if pending.is_empty() {
            return Ok(());
        }
        report.changes += pending.len() as u64;
        self.deliver(pending, report, progress)
    }
}
