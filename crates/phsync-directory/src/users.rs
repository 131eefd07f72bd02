//! The typed user record and the parsing of AD's attribute syntaxes.

use base64::Engine as _;
use ldap3::SearchEntry;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

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

/// An objectGUID: 16 raw bytes as AD stores them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// Parse the canonical string form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (braces allowed).
    /// The first three groups are little-endian in the raw bytes, as in Windows.
    pub fn parse(s: &str) -> Option<Guid> {
        let s = s.trim();
        let s = s
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or(s);
        let groups: Vec<&str> = s.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        if groups.len() != 5 || groups.iter().zip(lens).any(|(g, l)| g.len() != l) {
            return None;
        }
        let hex: String = groups.concat();
        let mut be = [0u8; 16];
        hex::decode_to_slice(&hex, &mut be).ok()?;
        let mut raw = be;
        raw[0..4].reverse();
        raw[4..6].reverse();
        raw[6..8].reverse();
        Some(Guid(raw))
    }

    /// Entra Connect's default sourceAnchor: standard base64 of the raw 16 bytes.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
}

impl std::fmt::Display for Guid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
        )
    }
}

impl std::fmt::Debug for Guid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Guid({self})")
    }
}

/// A security identifier parsed from its binary form.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Sid {
    pub revision: u8,
    pub authority: u64,
    pub sub_authorities: Vec<u32>,
}

impl Sid {
    /// Parse the binary SID (revision, count, 48-bit big-endian authority, LE sub-authorities).
    pub fn from_bytes(b: &[u8]) -> Option<Sid> {
        if b.len() < 8 {
            return None;
        }
        let count = b[1] as usize;
        if b.len() != 8 + 4 * count || b[0] != 1 {
            return None;
        }
        let authority = b[2..8]
            .iter()
            .fold(0u64, |acc, x| (acc << 8) | u64::from(*x));
        let sub_authorities = b[8..]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Some(Sid {
            revision: b[0],
            authority,
            sub_authorities,
        })
    }

    /// The relative identifier: the last sub-authority.
    pub fn rid(&self) -> Option<u32> {
        self.sub_authorities.last().copied()
    }
}

impl std::fmt::Display for Sid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S-{}-{}", self.revision, self.authority)?;
        for s in &self.sub_authorities {
            write!(f, "-{s}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Sid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sid({self})")
    }
}

/// An LDAP GeneralizedTime (`YYYYMMDDHHMMSS[.f]Z`), as seconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GeneralizedTime {
    pub unix_seconds: i64,
}

impl GeneralizedTime {
    /// Parse AD's form: 14 digits, an optional fraction, then `Z` (or `+0000`).
    pub fn parse(s: &str) -> Option<GeneralizedTime> {
        let s = s.trim();
        if s.len() < 15 || !s.is_char_boundary(14) || !s[..14].bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let mut rest = &s[14..];
        if let Some(r) = rest.strip_prefix(['.', ',']) {
            let digits = r.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            rest = &r[digits..];
        }
        if rest != "Z" && rest != "+0000" && rest != "-0000" {
            return None;
        }
        let n = |a: usize, b: usize| s[a..b].parse::<i64>().ok();
        let (y, mo, d, h, mi, se) = (
            n(0, 4)?,
            n(4, 6)?,
            n(6, 8)?,
            n(8, 10)?,
            n(10, 12)?,
            n(12, 14)?,
        );
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
            return None;
        }
        Some(GeneralizedTime {
            unix_seconds: days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se,
        })
    }

    /// ISO 8601 / RFC 3339 in UTC, e.g. `2026-11-22T00:12:33Z`.
    pub fn to_rfc3339(&self) -> String {
        let days = self.unix_seconds.div_euclid(86400);
        let secs = self.unix_seconds.rem_euclid(86400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

// Howard Hinnant's civil-calendar algorithms.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A Windows FILETIME (100 ns ticks since 1601-01-01) as Unix seconds; `None` for 0 and
/// "never" (i64::MAX).
pub fn filetime_to_unix(ft: i64) -> Option<i64> {
    if ft <= 0 || ft == i64::MAX {
        None
    } else {
        Some(ft / 10_000_000 - 11_644_473_600)
    }
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
    /// FILETIME of the last password set; 0 = must change at next logon.
    pub pwd_last_set: i64,
    /// FILETIME; 0 or i64::MAX = never expires.
    pub account_expires: i64,
    pub usn_changed: i64,
    pub when_changed: GeneralizedTime,
}

impl DirectoryUser {
    /// Entra Connect's sourceAnchor: base64 of the objectGUID bytes.
    pub fn source_anchor(&self) -> String {
        self.object_guid.to_base64()
    }

    pub fn enabled(&self) -> bool {
        self.user_account_control & UAC_ACCOUNTDISABLE == 0
    }

    /// pwdLastSet = 0: "user must change password at next logon".
    pub fn must_change_password(&self) -> bool {
        self.pwd_last_set == 0
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
        let text = |name: &str| -> Option<String> {
            entry
                .attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.first().cloned())
        };
        // ldap3 files a value under `attrs` when it happens to be valid UTF-8 and under
        // `bin_attrs` otherwise, so a binary attribute may be in either.
        let bytes = |name: &str| -> Option<Vec<u8>> {
            entry
                .bin_attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.first().cloned())
                .or_else(|| text(name).map(String::into_bytes))
        };
        let int = |name: &str| -> Result<i64, DirectoryError> {
            let v = text(name).ok_or_else(|| bad(format!("no {name}")))?;
            v.trim()
                .parse::<i64>()
                .map_err(|_| bad(format!("{name} {v:?} is not an integer")))
        };
        let guid_bytes = bytes("objectGUID").ok_or_else(|| bad("no objectGUID".into()))?;
        let object_guid = Guid(
            guid_bytes
                .as_slice()
                .try_into()
                .map_err(|_| bad(format!("objectGUID has {} bytes", guid_bytes.len())))?,
        );
        let sid_bytes = bytes("objectSid").ok_or_else(|| bad("no objectSid".into()))?;
        let object_sid =
            Sid::from_bytes(&sid_bytes).ok_or_else(|| bad("malformed objectSid".into()))?;
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
            pwd_last_set: int("pwdLastSet").unwrap_or(0),
            account_expires: int("accountExpires").unwrap_or(0),
            usn_changed: int("uSNChanged")?,
            when_changed: GeneralizedTime::parse(&when)
                .ok_or_else(|| bad(format!("whenChanged {when:?} is not a GeneralizedTime")))?,
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
    use super::*;

    #[test]
    fn guid_round_trip_and_anchor() {
        // Microsoft's documented example: GUID string vs. raw bytes (little-endian first groups).
        let g = Guid::parse("{0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9}").unwrap();
        assert_eq!(
            g.0,
            [
                0x3d, 0x2c, 0x1b, 0x0a, 0x5f, 0x4e, 0x71, 0x60, 0x82, 0x93, 0xa4, 0xb5, 0xc6, 0xd7,
                0xe8, 0xf9
            ]
        );
        assert_eq!(g.to_string(), "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9");
        assert_eq!(g.to_base64(), "PSwbCl9OcWCCk6S1xtfo+Q==");
        assert!(Guid::parse("0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f").is_none());
        assert!(Guid::parse("alice").is_none());
    }

    #[test]
    fn sid_parse() {
        // S-1-5-21-1-2-3-1104
        let mut b = vec![1u8, 5, 0, 0, 0, 0, 0, 5];
        for s in [21u32, 1, 2, 3, 1104] {
            b.extend_from_slice(&s.to_le_bytes());
        }
        let sid = Sid::from_bytes(&b).unwrap();
        assert_eq!(sid.to_string(), "S-1-5-21-1-2-3-1104");
        assert_eq!(sid.rid(), Some(1104));
        assert!(Sid::from_bytes(&b[..b.len() - 1]).is_none());
        assert!(Sid::from_bytes(&[]).is_none());
    }

    #[test]
    fn generalized_time() {
        let t = GeneralizedTime::parse("20261122001233.0Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-22T00:12:33Z");
        assert_eq!(
            GeneralizedTime::parse("19700101000000Z")
                .unwrap()
                .unix_seconds,
            0
        );
        assert_eq!(
            GeneralizedTime::parse("20000229235959.123Z")
                .unwrap()
                .to_rfc3339(),
            "2000-02-29T23:59:59Z"
        );
        for bad in [
            "",
            "2026",
            "20261322001233.0Z",
            "20261122001233.0",
            "2026112200123x.0Z",
            "20261122001233.Z",
        ] {
            assert!(GeneralizedTime::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn filetime() {
        assert_eq!(filetime_to_unix(0), None);
        assert_eq!(filetime_to_unix(i64::MAX), None);
        assert_eq!(filetime_to_unix(116_444_736_000_000_000), Some(0));
    }
}
