//! Stage 1, scope: the users in scope, from the directory.

use phsync_directory::DirectoryUser;

use super::{Engine, ProgressFn};
use crate::SyncError;

impl Engine {
    /// Every in-scope user (one directory read per cycle).
    pub(super) fn scope(&self, progress: ProgressFn<'_>) -> Result<Vec<DirectoryUser>, SyncError> {
        progress("scope", 0, 1);
        let users = self.directory.scope_users()?;
        progress("scope", users.len() as u64, users.len() as u64);
        Ok(users)
    }
}
