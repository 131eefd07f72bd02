//! The typed user record and the parsing of AD's attribute syntaxes.

use base64::Engine as _;
use ldap3::SearchEntry;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use super::entry;
use super::error::DirectoryError;

/// userAccountControl: ACCOUNTDISABLE.
pub const UAC_ACCOUNTDISABLE: u32 = 0x2;

/// The attributes read for every user.
pub(crate) const USER_ATTRS: &[&str] = &[
    "objectGUID",
    "objectSid",
    "sAMAccountName",
    "userPrincipalName",
    "displayName",
    "userAccountControl",
    "pwdLastSet",
    "accountExpires",
    "uSNChanged",
    "whenChanged",
];

pub use phsync_ad::{FileTime, GeneralizedTime, Guid, Sid};

/// A Windows FILETIME (100 ns ticks since 1601-01-01) as Unix seconds; `None` for 0 and
/// "never" (i64::MAX). Kept for callers of the old path; see [`phsync_ad::FileTime`].
pub fn filetime_to_unix(ft: i64) -> Option<i64> {
    phsync_ad::FileTime(ft).to_unix_seconds()
}

/// Entra Connect's default sourceAnchor: standard base64 of the objectGUID's raw bytes.
pub fn source_anchor(guid: &Guid) -> String {
    base64::engine::general_purpose::STANDARD.encode(guid.as_bytes())
}

/// One user as the directory describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub dn: String,
    pub object_guid: Guid,
    pub object_sid: Sid,
    pub rid: u32,
    pub sam_account_name: String,
    /// userPrincipalName, or `sam@realm` (realm lower-cased) when the account has none.
    pub user_principal_name: String,
    /// True when `user_principal_name` was derived because the account has no UPN.
    pub upn_derived: bool,
    pub display_name: Option<String>,
    pub user_account_control: u32,
    /// Raw FILETIME ([`phsync_ad::FileTime`]) of the last password set; 0 = must change at
    /// next logon.
    pub pwd_last_set: FileTime,
    /// Raw FILETIME ([`phsync_ad::FileTime`]); 0 or i64::MAX = never expires.
    pub account_expires: FileTime,
    pub usn_changed: i64,
    pub when_changed: GeneralizedTime,
}

impl DirectoryUser {
    /// Entra Connect's sourceAnchor: base64 of the objectGUID bytes.
    pub fn source_anchor(&self) -> String {
        source_anchor(&self.object_guid)
    }

    pub fn enabled(&self) -> bool {
        self.user_account_control & UAC_ACCOUNTDISABLE == 0
    }

    /// pwdLastSet = 0: "user must change password at next logon".
    pub fn must_change_password(&self) -> bool {
        self.pwd_last_set == FileTime::UNSET
    }

    /// `DOMAIN\sam`.
    pub fn down_level_name(&self, netbios_domain: &str) -> String {
        format!("{netbios_domain}\\{}", self.sam_account_name)
    }

    /// Build from a search entry; `realm` supplies the derived UPN's suffix.
    pub(crate) fn from_entry(
        entry: &SearchEntry,
        realm: &str,
    ) -> Result<DirectoryUser, DirectoryError> {
        let bad = |detail: String| DirectoryError::MalformedEntry {
            dn: entry.dn.clone(),
            detail,
        };
        let text = |name: &str| entry::text(entry, name);
        let bytes = |name: &str| entry::bytes(entry, name);
        let int = |name: &str| -> Result<i64, DirectoryError> {
            let v = text(name).ok_or_else(|| bad(format!("no {name}")))?;
            v.trim()
                .parse::<i64>()
                .map_err(|_| bad(format!("{name} {v:?} is not an integer")))
        };
        let object_guid = entry::object_guid(entry)?;
        let sid_bytes = bytes("objectSid").ok_or_else(|| bad("no objectSid".into()))?;
        let object_sid = Sid::from_bytes(&sid_bytes).map_err(|e| bad(format!("objectSid: {e}")))?;
        let rid = object_sid
            .rid()
            .ok_or_else(|| bad("objectSid has no RID".into()))?;
        let sam_account_name =
            text("sAMAccountName").ok_or_else(|| bad("no sAMAccountName".into()))?;
        let (user_principal_name, upn_derived) = match text("userPrincipalName") {
            Some(upn) if !upn.is_empty() => (upn, false),
            _ => (
                format!("{sam_account_name}@{}", realm.to_ascii_lowercase()),
                true,
            ),
        };
        let uac = int("userAccountControl")?;
        let when = text("whenChanged").ok_or_else(|| bad("no whenChanged".into()))?;
        Ok(DirectoryUser {
            dn: entry.dn.clone(),
            object_guid,
            object_sid,
            rid,
            sam_account_name,
            user_principal_name,
            upn_derived,
            display_name: text("displayName"),
            user_account_control: u32::try_from(uac)
                .or_else(|_| i32::try_from(uac).map(|v| v as u32))
                .map_err(|_| bad(format!("userAccountControl {uac} out of range")))?,
            pwd_last_set: FileTime(int("pwdLastSet").unwrap_or(0)),
            account_expires: FileTime(int("accountExpires").unwrap_or(0)),
            usn_changed: int("uSNChanged")?,
            when_changed: when
                .parse::<GeneralizedTime>()
                .map_err(|e| bad(format!("whenChanged: {e}")))?,
        })
    }
}

impl Serialize for DirectoryUser {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("DirectoryUser", 17)?;
        st.serialize_field("sam_account_name", &self.sam_account_name)?;
        st.serialize_field("user_principal_name", &self.user_principal_name)?;
        st.serialize_field("upn_derived", &self.upn_derived)?;
        st.serialize_field("display_name", &self.display_name)?;
        st.serialize_field("dn", &self.dn)?;
        st.serialize_field("object_guid", &self.object_guid.to_string())?;
        st.serialize_field("source_anchor", &self.source_anchor())?;
        st.serialize_field("object_sid", &self.object_sid.to_string())?;
        st.serialize_field("rid", &self.rid)?;
        st.serialize_field("user_account_control", &self.user_account_control)?;
        st.serialize_field("enabled", &self.enabled())?;
        st.serialize_field("must_change_password", &self.must_change_password())?;
        st.serialize_field("pwd_last_set", &self.pwd_last_set)?;
        st.serialize_field("account_expires", &self.account_expires)?;
        st.serialize_field("usn_changed", &self.usn_changed)?;
        st.serialize_field("when_changed", &self.when_changed.to_rfc3339())?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    //! GUID, SID and time parsing are tested in phsync-ad; here only what this crate adds.
    use super::*;

    #[test]
    fn source_anchor_is_base64_of_the_raw_guid() {
        let g = Guid::parse("{0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9}").unwrap();
        assert_eq!(source_anchor(&g), "PSwbCl9OcWCCk6S1xtfo+Q==");
    }

    #[test]
    fn filetime() {
        assert_eq!(filetime_to_unix(0), None);
        assert_eq!(filetime_to_unix(i64::MAX), None);
        assert_eq!(filetime_to_unix(116_444_736_000_000_000), Some(0));
    }
}
