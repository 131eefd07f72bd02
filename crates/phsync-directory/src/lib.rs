//! The LDAP directory layer: connect and bind to a domain controller (LDAPS or StartTLS,
//! verified against a configured CA), read the RootDSE, enumerate the in-scope users with a
//! paged search, resolve one user by name, UPN, DN or GUID, and follow the domain's changes as
//! the DC notifies them ([`ChangeNotifications`]) or DirSync reports them ([`DirSync`]).
//!
//! AD value types (GUID, SID, FILETIME, GeneralizedTime) are `phsync-ad`'s, re-exported
//! here. Knows nothing of the cloud. Referrals (Samba returns them for searches at the domain root)
//! are never followed.

mod connect;
mod dirsync;
mod entry;
mod error;
mod filter;
mod notify;
mod resolve;
mod rootdse;
mod scope;
mod target;
mod users;

pub use connect::Directory;
pub use dirsync::{
    DirSync, DirSyncChange, DIRSYNC_ATTRS, LDAP_DIRSYNC_OBJECT_SECURITY, LDAP_SERVER_DIRSYNC_OID,
};
pub use error::{AccountProblem, DirectoryError};
pub use filter::escape_filter_value;
pub use notify::{
    ChangeNotifications, ChangedObject, ObjectKind, DEFAULT_KEEPALIVE, LDAP_SERVER_NOTIFICATION_OID,
};
pub use phsync_ad::FileTime;
pub use rootdse::RootDse;
pub use scope::{ScopeChanges, UserScope, PAGE_SIZE};
pub use target::{LdapTarget, Transport};
pub use users::{
    filetime_to_unix, source_anchor, DirectoryUser, GeneralizedTime, Guid, Sid, UAC_ACCOUNTDISABLE,
};
