//! Reading attribute values out of an ldap3 [`SearchEntry`], once for every search here.
//!
//! ldap3 files a value under `attrs` when it happens to be valid UTF-8 and under `bin_attrs`
//! otherwise, so a binary attribute (objectGUID, objectSid) may be in either. Attribute names
//! are matched case-insensitively, as LDAP does.

use ldap3::SearchEntry;

use super::error::DirectoryError;
use super::users::Guid;

/// Every text value of `name` (none when absent).
pub(crate) fn values(entry: &SearchEntry, name: &str) -> Vec<String> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// The first text value of `name`.
pub(crate) fn text(entry: &SearchEntry, name: &str) -> Option<String> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first().cloned())
}

/// The first value of a binary attribute, wherever ldap3 filed it.
pub(crate) fn bytes(entry: &SearchEntry, name: &str) -> Option<Vec<u8>> {
    entry
        .bin_attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first().cloned())
        .or_else(|| text(entry, name).map(String::into_bytes))
}

/// The entry's objectGUID; a missing or malformed one names the entry's DN.
pub(crate) fn object_guid(entry: &SearchEntry) -> Result<Guid, DirectoryError> {
    let bad = |detail: String| DirectoryError::MalformedEntry {
        dn: entry.dn.clone(),
        detail,
    };
    let raw = bytes(entry, "objectGUID").ok_or_else(|| bad("no objectGUID".into()))?;
    Guid::from_slice(&raw).map_err(|e| bad(format!("objectGUID: {e}")))
}
