//! Stage 2, replicate: the changes since the stored cursor, from the DC.

use std::sync::atomic::Ordering;

use phsync_drsr::{DrsrError, ReplicatedAccount};

use super::{Engine, ProgressFn};
use crate::ports::Cursor;
use crate::SyncError;

impl Engine {
    /// Every object the DC sends since `cursor` (all of them for a full sync), and the
    /// cursor to store when they are delivered. Progress after every GetNCChanges batch
    /// (total 0: not known yet), so a caller can stop a long first replication between
    /// batches instead of waiting for all of it.
    pub(super) fn replicate(
        &self,
        cursor: Option<&Cursor>,
        progress: ProgressFn<'_>,
    ) -> Result<(Vec<ReplicatedAccount>, Cursor), SyncError> {
        progress("replicate", 0, 1);
        let stop = self.stop.clone();
        let mut all = Vec::new();
        let next = self.replication.replicate(cursor, &mut |accounts| {
            all.extend(accounts);
            progress("replicate", all.len() as u64, 0);
            if stop.load(Ordering::SeqCst) {
                return Err(DrsrError::Stopped);
            }
            Ok(())
        })?;
        progress("replicate", all.len() as u64, all.len() as u64);
        Ok((all, next))
    }
}
