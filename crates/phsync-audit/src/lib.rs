//! Password-quality audit over the credentials phsync already replicates: which passwords
//! are empty, weak, shared or leaked, and which accounts carry risky password settings.
//! Pure logic over records and files; collecting the records is the engine's job.

mod error;
mod leaked;

pub use error::AuditError;
pub use leaked::{LeakedEntry, LeakedHashes};
