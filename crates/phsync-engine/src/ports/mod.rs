//! The engine's view of the layers it joins: small interfaces for the directory and the
//! replication source (the tenant is [`phsync_tenant::CloudTenant`], the clock
//! [`phsync_tenant::Clock`]). The engine's rules run against these, so they are unit-tested
//! against in-memory fakes; [`live`] implements them over LDAP and MS-DRSR.

use phsync_directory::{DirectoryUser, Guid, ScopeChanges};
use phsync_drsr::{DrsrError, ReplicatedAccount};
use serde::{Deserialize, Serialize};

use crate::SyncError;

pub(crate) mod handover;
pub mod live;

/// A replication cursor as the engine stores it: opaque text, read back only by the
/// source that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(pub String);

/// Called with each batch of replicated accounts; an error (e.g. [`DrsrError::Stopped`])
/// ends the replication.
pub type BatchHandler<'a> = &'a mut dyn FnMut(Vec<ReplicatedAccount>) -> Result<(), DrsrError>;

/// Where a directory's change tracking stood when the scope was read: the DC (its database
/// instance; USNs mean nothing on another DC) and its highestCommittedUSN then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeMark {
    pub dc: String,
    pub usn: i64,
}

/// Where users and the scope come from (LDAP). Methods take `&self`: an implementation
/// holds no per-call state, or keeps it behind a lock.
pub trait DirectorySource {
    /// Every user in scope.
    fn scope_users(&self) -> Result<Vec<DirectoryUser>, SyncError>;
    /// Whether reading the scope takes long enough (a network read) to run on a thread of
    /// its own beside replication; an in-memory source is read in line.
    fn worth_a_thread(&self) -> bool {
        false
    }
    /// Every user in scope, and where change tracking stood just before they were read
    /// (`None`: this source has no change tracking).
    fn scope_users_marked(&self) -> Result<(Vec<DirectoryUser>, Option<ScopeMark>), SyncError> {
        Ok((self.scope_users()?, None))
    }
    /// The scope's changes since `since`, and the mark to store for the next call; `None`
    /// when they cannot be known from change tracking (another DC, scope groups, no change
    /// tracking): the caller reads the whole scope.
    fn scope_changes(
        &self,
        since: &ScopeMark,
    ) -> Result<Option<(ScopeChanges, ScopeMark)>, SyncError> {
        let _ = since;
        Ok(None)
    }
    /// One user by sAMAccountName, DOMAIN\sam, UPN, DN or GUID, and whether it is in scope;
    /// [`SyncError::UserNotFound`] when there is none.
    fn resolve_user(&self, name: &str) -> Result<(DirectoryUser, bool), SyncError>;
    /// Users by objectGUID (change notifications), one answer per GUID in order: the user
    /// and whether it is in scope, or `None` when no user object has that GUID (deleted,
    /// or not a plain user).
    fn resolve_guids(
        &self,
        guids: &[Guid],
    ) -> Result<Vec<Option<(DirectoryUser, bool)>>, SyncError>;
}

/// Where password hashes come from (MS-DRSR).
pub trait ReplicationSource {
    /// The changes since `cursor` (everything when `None`), in batches handed to `on_batch`;
    /// returns the cursor to store once everything handed over is in the tenant or the
    /// retry queue. A source may fetch the next batch while the handler has this one, so a
    /// handler's error may be seen only with the next batch (or, for the last one, not at
    /// all): the handler keeps its own errors. A handler's [`DrsrError::Stopped`] seen by the
    /// source comes back as [`SyncError::Interrupted`]; an unreadable stored cursor as
    /// [`SyncError::CursorUnreadable`].
    fn replicate(
        &self,
        cursor: Option<&Cursor>,
        on_batch: BatchHandler<'_>,
    ) -> Result<Cursor, SyncError>;

    /// The current passwords of single users (by objectGUID), one result each; `Err` when
    /// the DC cannot be reached at all.
    fn fetch(&self, guids: &[Guid])
        -> Result<Vec<Result<ReplicatedAccount, DrsrError>>, SyncError>;
}
