//! Stage 2, replicate: the changes since the stored cursor, from the DC, handed on batch by
//! batch as they arrive (see [`super::stream`]): a full sync never holds the whole domain's
//! passwords.

use std::sync::atomic::Ordering;

use phsync_drsr::{DrsrError, ReplicatedAccount};

use super::{Engine, ProgressFn};
use crate::ports::Cursor;
use crate::SyncError;

/// Why a replication ended early: the DC (or the stop flag), or the consumer of its batches.
pub(super) enum ReplicateError {
    /// From the DC, or a stop between batches.
    Source(SyncError),
    /// Returned by the batch consumer (already reported as it sees fit).
    Consumer(SyncError),
}

/// Each batch of password changes, and the progress callback back for the consumer.
pub(super) type Consumer<'a> =
    &'a mut dyn FnMut(Vec<ReplicatedAccount>, ProgressFn<'_>) -> Result<(), SyncError>;

/// What delivery reads of a replicated account: its GUID, password, pwdLastSet and the
/// password's metadata. Names, classes and history are dropped as soon as a batch arrives,
/// so that changes held while the scope is read cost a fraction of the decoded object.
fn slim(mut account: ReplicatedAccount) -> ReplicatedAccount {
    account.distinguished_name = None;
    account.sid = None;
    account.sam_account_name = None;
    account.user_principal_name = None;
    account.object_classes = Vec::new();
    account.nt_hash_history = Vec::new();
    account.supplemental = None;
    account
}

impl Engine {
    /// Every password change the DC sends since `cursor` (everything for a full sync),
    /// handed to `consume` one GetNCChanges batch at a time (the live source fetches the
    /// next batch meanwhile); returns the cursor to store once they are delivered. Objects without a
    /// replicated password never reach the consumer. Progress after every batch (total 0:
    /// not known yet), and a stop is honoured between batches.
    pub(super) fn replicate(
        &self,
        cursor: Option<&Cursor>,
        progress: ProgressFn<'_>,
        consume: Consumer<'_>,
    ) -> Result<Cursor, ReplicateError> {
        progress("replicate", 0, 1);
        let stop = self.stop.clone();
        let mut received = 0u64;
        let mut consumer_failed = None;
        let next = self.replication.replicate(cursor, &mut |accounts| {
            received += accounts.len() as u64;
            progress("replicate", received, 0);
            if stop.load(Ordering::SeqCst) {
                return Err(DrsrError::Stopped);
            }
            let changes: Vec<ReplicatedAccount> = accounts
                .into_iter()
                .filter(|a| a.password_replicated)
                .map(slim)
                .collect();
            if let Err(e) = consume(changes, &mut *progress) {
                consumer_failed = Some(e);
                return Err(DrsrError::Stopped);
            }
            Ok(())
        });
        if let Some(e) = consumer_failed {
            return Err(ReplicateError::Consumer(e));
        }
        let next = next.map_err(ReplicateError::Source)?;
        progress("replicate", received, received);
        Ok(next)
    }
}
