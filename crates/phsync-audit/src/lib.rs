//! Password-quality audit over the credentials phsync already replicates: which passwords
//! are empty, weak, shared or leaked, and which accounts carry risky password settings.
//! Pure logic over records and files; collecting the records is the engine's job.
//!
//! - [`LeakedHashes`]: Have I Been Pwned's "NTLM ordered by hash" file (or any sorted list
//!   of NT hashes) looked up in place: memory map and binary search, nothing loaded.
//! - [`WeakPasswords`]: a dictionary of passwords, hashed at load.
//! - [`analyze`]: [`AuditAccount`] records to an [`AuditReport`] that names accounts and
//!   never holds a hash; [`render_text`] for people, serde for tools.

mod error;
mod findings;
mod leaked;
mod weak;

pub use error::AuditError;
pub use findings::{
    analyze, default_computer_password, render_text, AuditAccount, AuditLists, AuditReport,
    Finding, FindingKind, ReportAccount, UF_ACCOUNTDISABLE, UF_DONT_EXPIRE_PASSWD,
    UF_ENCRYPTED_TEXT_PWD_ALLOWED, UF_PASSWD_NOTREQD,
};
pub use leaked::{LeakedEntry, LeakedHashes};
pub use weak::WeakPasswords;
