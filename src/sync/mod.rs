//! The sync engine: the only module that joins the directory, the replication client and
//! the cloud tenant.

mod engine;
mod error;
pub mod events;
pub mod fips;
pub mod state;

pub use engine::{
    CycleReport, Engine, LastCycle, ProgressFn, UserStatus, CREDENTIAL_BATCH, STOPPED_BY_CALLER,
};
pub use error::SyncError;
