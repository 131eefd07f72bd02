//! The sync engine: the only module that joins the directory, the replication client and
//! the cloud tenant.

pub mod events;
pub mod fips;
pub mod state;
