//! The sync engine: the only module that joins the directory, the replication client and
//! the cloud tenant.

pub mod check;
pub mod config;
mod engine;
mod error;
pub mod events;
pub mod fips;
pub mod state;

pub use check::{check_connection, CheckReport, CheckResult};
pub use engine::{
    CycleReport, Engine, LastCycle, ProgressFn, UserStatus, CREDENTIAL_BATCH, STOPPED_BY_CALLER,
};
pub use error::SyncError;
