//! The sync engine: the only crate that joins the directory (LDAP), the replication source
//! (MS-DRSR) and the cloud tenant.
//!
//! - [`config`] reads the TOML file; [`settings`] turns it, once, into validated settings
//!   that build every component.
//! - [`Engine`] runs a cycle as a pipeline of stages (scope → replicate → provision → retry →
//!   deliver) over the small interfaces in [`ports`], with live implementations over LDAP and
//!   MS-DRSR and fakes in the unit tests.
//! - [`state`] keeps the cursor, the retry queue and per-user diagnostics; [`events`] the
//!   event log (Entra Connect's event IDs).
//! - [`check_connection`] tests each step a cycle takes, one by one, without writing.
//! - [`audit::run`] is the password-quality audit over the same replication, writing nothing.

pub mod audit;
pub mod check;
pub mod config;
mod engine;
mod error;
pub mod events;
pub mod fips;
pub mod ports;
pub mod settings;
pub mod state;

pub use check::{check_connection, CheckReport, CheckResult};
pub use engine::{
    ChangeStats, CycleReport, Engine, LastCycle, NotificationStatus, Parts, ProgressFn, RunHooks,
    StageTimings, UserStatus, CREDENTIAL_BATCH, DEFAULT_COALESCE, DIRSYNC_POLL, HEARTBEAT_EVERY,
    RECONNECT_MAX, RECONNECT_MIN, STALE_AFTER, STOPPED_BY_CALLER,
};
pub use error::SyncError;
pub use settings::Settings;
