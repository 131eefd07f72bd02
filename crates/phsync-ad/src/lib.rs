//! Active Directory value types, one per concept, shared by the LDAP layer
//! (`phsync-directory`) and the replication layer (`phsync-drsr`): both read the same
//! objects from the same directory, so an objectGUID or objectSid from one compares equal
//! to the same value from the other.
//!
//! - [`Guid`]: objectGUID, invocation ids, DSNAME GUIDs (MS-DTYP §2.3.4 layout).
//! - [`Sid`]: objectSid and DSNAME SIDs (MS-DTYP §2.4.2).
//! - [`FileTime`]: pwdLastSet, accountExpires and other Integer8 times (MS-DTYP §2.3.3).
//! - [`GeneralizedTime`]: whenChanged / whenCreated (RFC 4517 §3.3.13).
//!
//! Knows nothing of LDAP connections, RPC or the cloud; depends only on `time`, `serde`,
//! `hex` and `thiserror`.

mod error;
mod filetime;
mod generalized_time;
mod guid;
mod sid;

pub use error::ParseError;
pub use filetime::{FileTime, SECONDS_1601_TO_1970};
pub use generalized_time::GeneralizedTime;
pub use guid::Guid;
pub use sid::Sid;
