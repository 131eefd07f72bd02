//! The live sources: LDAP for the directory, MS-DRSR for replication, each on the engine's
//! own tokio runtime (the engine's API is blocking).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use phsync_directory::{DirectoryUser, Guid, ScopeChanges};
use phsync_drsr::{DrsrClient, DrsrError, ReplicatedAccount, ReplicationCursor};

use super::handover::Refused;
use super::{BatchHandler, Cursor, DirectorySource, ReplicationSource, ScopeMark};
use crate::settings::Settings;
use crate::SyncError;

/// How long a scope read may still finish once the engine's stop flag is set: a small
/// scope's read completes (and the stopped cycle reports the users it covers), a large
/// domain's read (tens of seconds at 100,000 users) is abandoned, so a stop takes effect
/// within about a second instead of when the read ends.
pub const SCOPE_READ_STOP_GRACE: Duration = Duration::from_secs(1);
const STOP_POLL: Duration = Duration::from_millis(50);

/// Where the connected DC's change tracking stands (its RootDSE, read at bind).
fn mark_of(dir: &phsync_directory::Directory) -> ScopeMark {
    ScopeMark {
        dc: dir.root_dse().ds_service_name.clone(),
        usn: dir.root_dse().highest_committed_usn,
    }
}

/// The directory over LDAP: one connection per call (a cycle reads the scope once).
pub struct LdapDirectory {
    settings: Arc<Settings>,
    rt: Arc<tokio::runtime::Runtime>,
    /// The engine's stop flag: scope reads end [`SCOPE_READ_STOP_GRACE`] after it is set.
    stop: Arc<AtomicBool>,
}

impl LdapDirectory {
    pub fn new(
        settings: Arc<Settings>,
        rt: Arc<tokio::runtime::Runtime>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        LdapDirectory { settings, rt, stop }
    }

    /// Runs a scope read to its end, or until [`SCOPE_READ_STOP_GRACE`] after a stop
    /// request: then `Interrupted` (the read's connection is dropped with its future).
    fn until_stopped<T>(
        &self,
        read: impl Future<Output = Result<T, SyncError>>,
    ) -> Result<T, SyncError> {
        let stop = self.stop.clone();
        self.rt.block_on(async move {
            tokio::select! {
                r = read => r,
                () = async {
                    while !stop.load(Ordering::SeqCst) {
                        tokio::time::sleep(STOP_POLL).await;
                    }
                    tokio::time::sleep(SCOPE_READ_STOP_GRACE).await;
                } => Err(SyncError::Interrupted),
            }
        })
    }
}

impl DirectorySource for LdapDirectory {
    fn scope_users(&self) -> Result<Vec<DirectoryUser>, SyncError> {
        let settings = &self.settings;
        self.until_stopped(async {
            let mut dir = settings.connect_directory().await?;
            let users = dir.users(&settings.scope).await;
            dir.close().await;
            Ok(users?)
        })
    }

    fn worth_a_thread(&self) -> bool {
        true
    }

    fn scope_users_marked(&self) -> Result<(Vec<DirectoryUser>, Option<ScopeMark>), SyncError> {
        let settings = &self.settings;
        self.until_stopped(async {
            let mut dir = settings.connect_directory().await?;
            // Read at connect, before the search: a change during the search is seen again
            // next time (harmless), never missed.
            let mark = mark_of(&dir);
            let users = dir.users(&settings.scope).await;
            dir.close().await;
            Ok((users?, Some(mark)))
        })
    }

    fn scope_changes(
        &self,
        since: &ScopeMark,
    ) -> Result<Option<(ScopeChanges, ScopeMark)>, SyncError> {
        let settings = &self.settings;
        self.until_stopped(async {
            let mut dir = settings.connect_directory().await?;
            let mark = mark_of(&dir);
            if mark.dc != since.dc || mark.usn < since.usn {
                dir.close().await;
                return Ok(None);
            }
            let changes = dir.scope_changes(&settings.scope, since.usn).await;
            dir.close().await;
            Ok(changes?.map(|c| (c, mark)))
        })
    }

    fn resolve_user(&self, name: &str) -> Result<(DirectoryUser, bool), SyncError> {
        let settings = &self.settings;
        self.rt.block_on(async {
            let mut dir = settings.connect_directory().await?;
            let user = match dir.resolve_user(name).await {
                Ok(u) => u,
                Err(e) => {
                    dir.close().await;
                    return Err(match e {
                        phsync_directory::DirectoryError::UserNotFound { .. } => {
                            SyncError::UserNotFound(name.to_string())
                        }
                        other => other.into(),
                    });
                }
            };
            let users = dir.users(&settings.scope).await;
            dir.close().await;
            let in_scope = users?.iter().any(|u| u.object_guid == user.object_guid);
            Ok((user, in_scope))
        })
    }

    fn resolve_guids(
        &self,
        guids: &[Guid],
    ) -> Result<Vec<Option<(DirectoryUser, bool)>>, SyncError> {
        let settings = &self.settings;
        self.rt.block_on(async {
            let mut dir = settings.connect_directory().await?;
            let found = async {
                let in_scope = dir.scoped_users_among(&settings.scope, guids).await?;
                let in_scope: std::collections::HashMap<Guid, DirectoryUser> =
                    in_scope.into_iter().map(|u| (u.object_guid, u)).collect();
                let rest: Vec<Guid> = guids
                    .iter()
                    .filter(|g| !in_scope.contains_key(g))
                    .copied()
                    .collect();
                let others: std::collections::HashMap<Guid, DirectoryUser> = dir
                    .users_by_guid(&rest)
                    .await?
                    .into_iter()
                    .map(|u| (u.object_guid, u))
                    .collect();
                Ok::<_, phsync_directory::DirectoryError>(
                    guids
                        .iter()
                        .map(|g| match in_scope.get(g) {
                            Some(u) => Some((u.clone(), true)),
                            None => others.get(g).map(|u| (u.clone(), false)),
                        })
                        .collect(),
                )
            }
            .await;
            dir.close().await;
            Ok(found?)
        })
    }
}

/// Replication over MS-DRSR: one session per call.
pub struct DrsrSource {
    settings: Arc<Settings>,
    rt: Arc<tokio::runtime::Runtime>,
}

impl DrsrSource {
    pub fn new(settings: Arc<Settings>, rt: Arc<tokio::runtime::Runtime>) -> Self {
        DrsrSource { settings, rt }
    }

    fn client_config(&self) -> Result<phsync_drsr::DrsrConfig, SyncError> {
        // Reading the password can fail now (file removed, variable unset): a config error.
        Ok(self
            .settings
            .replication
            .drsr_config(&self.settings.password)?)
    }
}

impl ReplicationSource for DrsrSource {
    fn replicate(
        &self,
        cursor: Option<&Cursor>,
        on_batch: BatchHandler<'_>,
    ) -> Result<Cursor, SyncError> {
        let cursor: Option<ReplicationCursor> = match cursor {
            Some(Cursor(text)) => Some(
                serde_json::from_str(text)
                    .map_err(|e| SyncError::CursorUnreadable(e.to_string()))?,
            ),
            None => None,
        };
        let cfg = self.client_config()?;
        let batch = self.settings.rules.replication_batch;
        // The handler runs on the caller's thread, outside any async runtime: it writes to the
        // tenant, and a blocking client there (PostgreSQL's, HTTPS) cannot run inside one. The
        // replication runs on a thread of its own and hands each batch over; it asks the DC
        // for the next batch while the handler delivers this one (the DC's serving time is a
        // full sync's floor), and stops at the handler's refusal, seen with the next batch.
        let rt = &self.rt;
        let next = super::handover::hand_over(
            move |hand: &mut dyn FnMut(
                Vec<ReplicatedAccount>,
            ) -> Result<(), Refused<DrsrError>>| {
                rt.block_on(async {
                    let mut client = DrsrClient::connect(&cfg).await?;
                    let result = client
                        .replicate_domain_with(cursor.as_ref(), batch, &mut |accounts| {
                            hand(accounts).map_err(|refused| match refused {
                                Refused::By(e) => e,
                                Refused::Gone => DrsrError::Stopped,
                            })
                        })
                        .await;
                    let _ = client.close().await;
                    result
                })
            },
            on_batch,
        )
        .map_err(|_| SyncError::Host("internal: the replication thread panicked".into()))?;
        let next = match next {
            Ok(next) => next,
            Err(DrsrError::Stopped) => return Err(SyncError::Interrupted),
            Err(e) => return Err(e.into()),
        };
        Ok(Cursor(
            serde_json::to_string(&next).expect("a replication cursor serializes"),
        ))
    }

    fn fetch(
        &self,
        guids: &[Guid],
    ) -> Result<Vec<Result<ReplicatedAccount, DrsrError>>, SyncError> {
        let cfg = self.client_config()?;
        self.rt.block_on(async {
            let mut client = DrsrClient::connect(&cfg).await.map_err(SyncError::from)?;
            let mut out = Vec::with_capacity(guids.len());
            for g in guids {
                out.push(client.replicate_user(&g.to_string()).await);
            }
            let _ = client.close().await;
            Ok(out)
        })
    }
}
