use thiserror::Error;

use crate::config::ConfigError;
use phsync_directory::DirectoryError;
use phsync_drsr::DrsrError;
use phsync_tenant::CloudError;

use super::state::StateError;

/// Why a cycle (or a one-user sync) could not run: each variant names the layer that failed,
/// so callers map it once (the C ABI to a status, the CLI to an exit code). Per-user failures are not errors: they
/// are statuses in the report and entries in the retry queue.
#[derive(Debug, Error)]
pub enum SyncError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}", super::fips::FIPS_REFUSAL)]
    Fips,
    #[error("directory (LDAP): {0}")]
    Directory(#[from] DirectoryError),
    #[error("replication (MS-DRSR): {0}")]
    Replication(#[from] DrsrError),
    #[error("cloud tenant: {0}")]
    Tenant(#[from] CloudError),
    #[error(transparent)]
    State(#[from] StateError),
    /// The stored replication cursor does not parse (written by another version, or damaged).
    #[error("the stored replication cursor is unreadable ({0}); run a full sync")]
    CursorUnreadable(String),
    /// The event log could not be opened.
    #[error("cannot open the event log in {dir}: {detail}")]
    EventLog { dir: String, detail: String },
    /// This host failed: the async runtime could not start.
    #[error("{0}")]
    Host(String),
    /// The system random generator failed (no salt for a digest): not a failure of the DC,
    /// the tenant or the config.
    #[error("the system random generator failed: {0}")]
    Random(String),
    #[error("no user {0:?} in the directory")]
    UserNotFound(String),
    /// The stop flag was set (a signal, or a progress callback asking to stop): what was
    /// applied stays applied, the cursor was not advanced, the next cycle resumes.
    #[error("stopped by the caller before the cycle finished; what was applied stays applied, the cursor was not advanced and the next cycle resumes from it")]
    Interrupted,
}
