//! Stage 1, scope: the users in scope, from the directory. A full cycle (and every
//! [`SCOPE_REREAD_SECONDS`], and after a scope setting or DC change) reads the whole scope;
//! an incremental cycle asks the directory's change tracking only what changed since the
//! mark stored by the last completed cycle, so its cost follows the changes, not the domain.

use serde::{Deserialize, Serialize};

use phsync_directory::{DirectoryUser, Guid, ScopeChanges};

use super::Engine;
use crate::ports::{DirectorySource, ScopeMark};
use crate::SyncError;

/// The safety net under change tracking: what it cannot see (a whole OU subtree moved out of
/// scope, an object restored from the recycle bin) is caught by a full read this often.
pub const SCOPE_REREAD_SECONDS: i64 = 6 * 3600;

pub(super) const SCOPE_MARK_KEY: &str = "scope_mark";

/// What the last completed cycle stored about its scope read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredScopeMark {
    pub mark: ScopeMark,
    /// When the whole scope was last read (unix seconds).
    pub full_read_at: i64,
    /// The scope settings then (a change forces a full read).
    pub scope: String,
}

/// One cycle's scope read.
pub(super) enum ScopeRead {
    /// The whole scope, and the change-tracking mark taken before it was read.
    Full {
        users: Vec<DirectoryUser>,
        mark: Option<ScopeMark>,
    },
    /// Only what changed since the stored mark.
    Changes {
        changes: ScopeChanges,
        mark: ScopeMark,
        full_read_at: i64,
    },
}

/// Read the scope: only the changes since `since` when the directory can tell them,
/// the whole scope otherwise. Runs on the scope thread, beside replication.
pub(super) fn read_scope(
    directory: &dyn DirectorySource,
    since: Option<&StoredScopeMark>,
) -> Result<ScopeRead, SyncError> {
    if let Some(stored) = since {
        if let Some((changes, mark)) = directory.scope_changes(&stored.mark)? {
            return Ok(ScopeRead::Changes {
                changes,
                mark,
                full_read_at: stored.full_read_at,
            });
        }
    }
    let (users, mark) = directory.scope_users_marked()?;
    Ok(ScopeRead::Full { users, mark })
}

/// A placeholder while the real directory is on the scope thread; never called.
pub(super) struct Detached;

impl DirectorySource for Detached {
    fn scope_users(&self) -> Result<Vec<DirectoryUser>, SyncError> {
        Err(detached())
    }
    fn resolve_user(&self, _: &str) -> Result<(DirectoryUser, bool), SyncError> {
        Err(detached())
    }
    fn resolve_guids(&self, _: &[Guid]) -> Result<Vec<Option<(DirectoryUser, bool)>>, SyncError> {
        Err(detached())
    }
}

fn detached() -> SyncError {
    SyncError::Host("internal: the directory is lost (its scope reader panicked)".into())
}

impl Engine {
    /// The settings' scope, as stored with the mark.
    pub(super) fn scope_fingerprint(&self) -> String {
        format!("{:?}", self.settings.scope)
    }

    /// The stored mark to read only the scope's changes from, or `None` for a full read.
    pub(super) fn scope_since(&self, is_full: bool) -> Result<Option<StoredScopeMark>, SyncError> {
        // Under `run`, the first cycle (and any until one succeeds) reads the whole scope even
        // when a stored mark would allow only its changes: the run loop then knows every
        // in-scope user, and a notified change that left a password alone (a description, a
        // display name) replicates nothing from the start, not only after a full read.
        let run_needs_scope = self.known.as_ref().is_some_and(|k| !k.is_complete());
        if is_full || run_needs_scope {
            return Ok(None);
        }
        let Some(text) = self.state.get(SCOPE_MARK_KEY)? else {
            return Ok(None);
        };
        let Ok(stored) = serde_json::from_str::<StoredScopeMark>(&text) else {
            return Ok(None);
        };
        let age = self.now().unix_micros() / 1_000_000 - stored.full_read_at;
        if stored.scope != self.scope_fingerprint() || !(0..SCOPE_REREAD_SECONDS).contains(&age) {
            return Ok(None);
        }
        Ok(Some(stored))
    }
}
