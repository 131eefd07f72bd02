//! The sync engine: the only module that joins the directory, the replication client and
//! the cloud tenant.

mod engine;
mod error;
pub mod events;
pub mod fips;
pub mod state;

pub use engine::{CycleReport, Engine, ProgressFn, UserStatus};
pub use error::SyncError;
