//! DirSync: the DC's changes since a cookie, polled. The alternative change source where the
//! DC refuses change notifications ([`crate::ChangeNotifications`]), as Entra Connect itself
//! reads AD.
//!
//! # The control (MS-ADTS 3.1.1.3.4.1.3 LDAP_SERVER_DIRSYNC_OID, 1.2.840.113556.1.4.841)
//!
//! Request value: `SEQUENCE { flags INTEGER, maxBytes INTEGER, cookie OCTET STRING }`;
//! response value: `SEQUENCE { moreResults INTEGER, unused INTEGER, cookie OCTET STRING }`.
//! The search must be a subtree search at the root of an NC. Each search returns the objects
//! changed since the cookie (an empty cookie: every object) and a cookie to pass next time;
//! while `moreResults` is non-zero there is more to read at once.
//!
//! Rights: without flags the caller needs "Replicating Directory Changes" on the NC (the
//! account PHS replicates with has it, and more); with `LDAP_DIRSYNC_OBJECT_SECURITY` any
//! account works, and sees only the objects and attributes it may read. [`DirSync::open`]
//! tries without, and falls back to the flag when the DC answers insufficientAccessRights.
//!
//! # What an entry carries (observed on Samba 4.17, as documented for AD)
//!
//! Only the *requested* attributes that changed since the cookie, plus objectGUID and
//! instanceType; a new object carries every requested attribute, a moved or renamed one its
//! `name` (and parentGUID). An object none of whose requested attributes changed is not
//! returned at all: asking only for what PHS cares about ([`DIRSYNC_ATTRS`]) makes the DC
//! drop, e.g., a change of `description` itself. The filter is evaluated against the whole
//! object, not only the changed attributes.
//!
//! A first search with an empty cookie enumerates the whole NC; [`DirSync::open`] instead
//! takes its starting cookie from searches whose filter matches no object: a round trip each,
//! starting at the DC's current USN. (On Samba a change made right after the first such
//! cookie is not reported against it; the cookie of a second search, given the first, is
//! good — so the baseline is two searches.)

use std::time::Duration;

use ldap3::asn1::{parse_tag, parse_uint, TagClass, Types, PL};
use ldap3::controls::RawControl;
use ldap3::{Ldap, Scope, SearchEntry};

use super::connect::{op_error, Directory};
use super::entry;
use super::error::DirectoryError;
use super::notify::{classify, ObjectKind};
use super::target::LdapTarget;
use super::users::{FileTime, Guid};

/// LDAP_SERVER_DIRSYNC_OID (MS-ADTS 3.1.1.3.4.1.3).
pub const LDAP_SERVER_DIRSYNC_OID: &str = "1.2.840.113556.1.4.841";
/// LDAP_DIRSYNC_OBJECT_SECURITY: no replication right needed; only readable data returned.
pub const LDAP_DIRSYNC_OBJECT_SECURITY: i64 = 0x1;

/// The attributes DirSync is asked for: a change to any of them may matter to PHS (the
/// password, enabled/disabled, a move or rename, the tenant's user name, a scoping group's
/// members); a change to nothing else is not even returned.
pub const DIRSYNC_ATTRS: &[&str] = &[
    "pwdLastSet",
    "unicodePwd",
    "userAccountControl",
    "name",
    "userPrincipalName",
    "displayName",
    "sAMAccountName",
    "member",
    "objectClass",
];

/// The user objects (as the user scope counts them) and the groups.
const DIRSYNC_FILTER: &str =
    "(|(&(objectClass=user)(objectCategory=person)(!(objectClass=computer)))(objectClass=group))";
/// Matches no object: the baseline searches return a cookie and nothing else.
const NOTHING_FILTER: &str = "(objectGUID=\\00)";
/// At most this many searches in one [`DirSync::poll`] while the DC says there is more.
const MAX_ROUNDS: usize = 1000;

const RC_INSUFFICIENT_ACCESS: u32 = 50;
const RC_UNAVAILABLE_CRITICAL_EXTENSION: u32 = 12;
const RC_UNWILLING_TO_PERFORM: u32 = 53;

/// What one DirSync entry says changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirSyncChange {
    /// The object's DN now.
    pub dn: String,
    pub object_guid: Guid,
    /// [`ObjectKind::User`] for a user object (or an entry that does not say: only new
    /// objects carry objectClass), [`ObjectKind::Other`] for a group's `member` change.
    pub kind: ObjectKind,
    /// The names (lower-case) of the requested attributes that changed.
    pub changed: Vec<String>,
    /// pwdLastSet, when it changed.
    pub pwd_last_set: Option<FileTime>,
    /// userAccountControl, when it changed.
    pub user_account_control: Option<u32>,
    /// A group whose membership changed.
    pub is_group: bool,
}

impl DirSyncChange {
    /// The password changed (pwdLastSet or unicodePwd).
    pub fn password_changed(&self) -> bool {
        self.changed
            .iter()
            .any(|a| a == "pwdlastset" || a == "unicodepwd")
    }

    pub(crate) fn from_entry(entry: &SearchEntry) -> Option<DirSyncChange> {
        let object_guid = entry::object_guid(entry).ok()?;
        let names = entry.attrs.keys().chain(entry.bin_attrs.keys());
        let changed: Vec<String> = names
            .map(|k| k.to_ascii_lowercase())
            .filter(|k| {
                DIRSYNC_ATTRS
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(k) && *k != "objectclass")
            })
            .collect();
        let first = |name: &str| entry::text(entry, name);
        let classes = entry::values(entry, "objectClass");
        let is_group = changed.iter().any(|a| a == "member")
            || classes.iter().any(|c| c.eq_ignore_ascii_case("group"));
        let kind = if is_group {
            ObjectKind::Other
        } else if classes.is_empty() {
            ObjectKind::User
        } else {
            classify(&classes, None)
        };
        let uac = first("userAccountControl").and_then(|v| {
            let v: i64 = v.trim().parse().ok()?;
            u32::try_from(v)
                .ok()
                .or_else(|| i32::try_from(v).ok().map(|x| x as u32))
        });
        Some(DirSyncChange {
            dn: entry.dn.clone(),
            object_guid,
            kind,
            pwd_last_set: first("pwdLastSet")
                .and_then(|v| v.trim().parse().ok())
                .map(FileTime),
            user_account_control: uac,
            changed,
            is_group,
        })
    }
}

/// The request control's value.
pub(crate) fn request_value(flags: i64, max_bytes: i64, cookie: &[u8]) -> Vec<u8> {
    let mut body = ber_integer(flags);
    body.extend(ber_integer(max_bytes));
    body.extend(ber_tlv(0x04, cookie));
    ber_tlv(0x30, &body)
}

fn ber_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn ber_integer(v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    // Minimal two's complement: drop leading bytes that only repeat the sign.
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    ber_tlv(0x02, &bytes[start..])
}

/// The response control's (moreResults, cookie); `None` if it is not the documented shape.
pub(crate) fn parse_response(val: &[u8]) -> Option<(bool, Vec<u8>)> {
    let (_, tag) = parse_tag(val).ok()?;
    let PL::C(parts) = tag.payload else {
        return None;
    };
    let mut parts = parts.into_iter();
    let more = parts.next()?;
    if more.class != TagClass::Universal || more.id != Types::Integer as u64 {
        return None;
    }
    let PL::P(more) = more.payload else {
        return None;
    };
    let more = parse_uint(&more).ok()?.1 != 0;
    let _unused = parts.next()?;
    let cookie = parts.next()?;
    if cookie.class != TagClass::Universal || cookie.id != Types::OctetString as u64 {
        return None;
    }
    let PL::P(cookie) = cookie.payload else {
        return None;
    };
    Some((more, cookie))
}

/// A DirSync reader on a connection of its own: [`poll`](Self::poll) returns what changed
/// since the last poll.
pub struct DirSync {
    ldap: Ldap,
    url: String,
    base: String,
    timeout: Duration,
    cookie: Vec<u8>,
    flags: i64,
}

impl std::fmt::Debug for DirSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirSync")
            .field("url", &self.url)
            .field("base", &self.base)
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

/// One DirSync search's outcome.
enum Searched {
    Ok {
        entries: Vec<SearchEntry>,
        more: bool,
        cookie: Vec<u8>,
    },
    Refused {
        rc: u32,
        text: String,
    },
}

impl DirSync {
    /// Connect (a connection of its own), bind, and start from `cookie` (one a previous
    /// [`cookie`](Self::cookie) gave) or, without one or when the DC rejects it, from now.
    ///
    /// Errors: [`DirectoryError::DirSyncUnsupported`] when the DC does not list the control
    /// or refuses it even with object security; connection and bind errors as
    /// [`Directory::connect`] gives them.
    pub async fn open(
        target: &LdapTarget,
        password: &str,
        cookie: Option<Vec<u8>>,
    ) -> Result<DirSync, DirectoryError> {
        let dir = Directory::connect(target, password).await?;
        DirSync::start(dir, cookie).await
    }

    /// As [`open`](Self::open), on a connection already bound.
    pub async fn start(dir: Directory, cookie: Option<Vec<u8>>) -> Result<DirSync, DirectoryError> {
        let Directory {
            mut ldap,
            url,
            timeout,
            root_dse,
            ..
        } = dir;
        let controls = super::notify::supported_controls(&mut ldap, &url, timeout).await?;
        if !controls.iter().any(|c| c == LDAP_SERVER_DIRSYNC_OID) {
            return Err(DirectoryError::DirSyncUnsupported {
                url,
                detail: format!(
                    "its RootDSE does not list LDAP_SERVER_DIRSYNC_OID ({LDAP_SERVER_DIRSYNC_OID}) in supportedControl"
                ),
            });
        }
        let mut ds = DirSync {
            ldap,
            url,
            base: root_dse.default_naming_context,
            timeout,
            cookie: Vec::new(),
            flags: 0,
        };
        // The first search also finds out whether the object-security flag is needed.
        let first = ds.nothing_since(&[]).await?;
        ds.cookie = match cookie.filter(|c| !c.is_empty()) {
            Some(stored) => stored,
            None => ds.nothing_since(&first).await?,
        };
        Ok(ds)
    }

    /// A search that matches nothing, from `cookie`: the cookie for "from now on" (see the
    /// module docs for why a baseline takes two). Switches to object security when the DC
    /// answers insufficientAccessRights.
    async fn nothing_since(&mut self, cookie: &[u8]) -> Result<Vec<u8>, DirectoryError> {
        loop {
            match self.search(NOTHING_FILTER, &["objectGUID"], cookie).await? {
                Searched::Ok { cookie, .. } => return Ok(cookie),
                Searched::Refused { rc, .. } if rc == RC_INSUFFICIENT_ACCESS && self.flags == 0 => {
                    tracing::info!(url = %self.url, "DirSync with the object-security flag: the account lacks Replicating Directory Changes");
                    self.flags = LDAP_DIRSYNC_OBJECT_SECURITY;
                }
                Searched::Refused { rc, text } => {
                    return Err(DirectoryError::DirSyncUnsupported {
                        url: self.url.clone(),
                        detail: format!(
                            "the DirSync search was refused with LDAP result {rc}: {}",
                            text.trim_end_matches('\0').trim()
                        ),
                    })
                }
            }
        }
    }

    /// One DirSync search with `cookie`.
    async fn search(
        &mut self,
        filter: &str,
        attrs: &[&str],
        cookie: &[u8],
    ) -> Result<Searched, DirectoryError> {
        let op = format!("DirSync search under {}", self.base);
        let control = RawControl {
            ctype: LDAP_SERVER_DIRSYNC_OID.to_string(),
            crit: true,
            val: Some(request_value(self.flags, 0, cookie)),
        };
        let result = self
            .ldap
            .with_controls(control)
            .with_timeout(self.timeout)
            .search(&self.base, Scope::Subtree, filter, attrs.to_vec())
            .await
            .map_err(|e| self.lost(op_error(e, &self.url, &op, self.timeout)))?;
        let ldap3::SearchResult(entries, res) = result;
        if res.rc != 0 {
            return Ok(Searched::Refused {
                rc: res.rc,
                text: res.text,
            });
        }
        let response = res
            .ctrls
            .iter()
            .find(|c| c.1.ctype == LDAP_SERVER_DIRSYNC_OID)
            .and_then(|c| c.1.val.as_deref())
            .and_then(parse_response);
        let Some((more, cookie)) = response else {
            return Err(DirectoryError::DirSyncLost {
                url: self.url.clone(),
                detail: "the DirSync search answered without a usable DirSync response control"
                    .into(),
            });
        };
        Ok(Searched::Ok {
            entries: entries
                .into_iter()
                .filter(|e| !e.is_ref() && !e.is_intermediate())
                .map(SearchEntry::construct)
                .collect(),
            more,
            cookie,
        })
    }

    fn lost(&self, e: DirectoryError) -> DirectoryError {
        DirectoryError::DirSyncLost {
            url: self.url.clone(),
            detail: e.to_string(),
        }
    }

    /// What changed since the last poll (or [`open`](Self::open)), each object once, in the
    /// DC's order; the cookie moves past them. Errors end this reader
    /// ([`DirectoryError::DirSyncLost`]: open a new one with the last [`cookie`](Self::cookie)).
    pub async fn poll(&mut self) -> Result<Vec<DirSyncChange>, DirectoryError> {
        let mut out: Vec<DirSyncChange> = Vec::new();
        let mut cookie = self.cookie.clone();
        for _ in 0..MAX_ROUNDS {
            match self.search(DIRSYNC_FILTER, DIRSYNC_ATTRS, &cookie).await? {
                Searched::Ok {
                    entries,
                    more,
                    cookie: next,
                } => {
                    for e in &entries {
                        match DirSyncChange::from_entry(e) {
                            Some(c) => {
                                match out.iter_mut().find(|o| o.object_guid == c.object_guid) {
                                    Some(o) => merge(o, c),
                                    None => out.push(c),
                                }
                            }
                            None => {
                                tracing::warn!(dn = %e.dn, "DirSync entry without a usable objectGUID: skipped")
                            }
                        }
                    }
                    cookie = next;
                    if !more {
                        break;
                    }
                }
                Searched::Refused { rc, text } => {
                    let text = text.trim_end_matches('\0').trim().to_string();
                    if matches!(
                        rc,
                        RC_UNAVAILABLE_CRITICAL_EXTENSION | RC_UNWILLING_TO_PERFORM
                    ) {
                        return Err(DirectoryError::DirSyncUnsupported {
                            url: self.url.clone(),
                            detail: format!("LDAP result {rc}: {text}"),
                        });
                    }
                    // A cookie the DC no longer takes (e.g. a DC restored from backup): start
                    // over from now; the error tells the caller to catch up with a cycle.
                    let first = self.nothing_since(&[]).await?;
                    self.cookie = self.nothing_since(&first).await?;
                    return Err(DirectoryError::DirSyncLost {
                        url: self.url.clone(),
                        detail: format!(
                            "the DirSync search failed with LDAP result {rc}: {text}; starting over from now"
                        ),
                    });
                }
            }
        }
        self.cookie = cookie;
        Ok(out)
    }

    /// The cookie to resume from (store it; pass it to [`open`](Self::open) next time).
    pub fn cookie(&self) -> &[u8] {
        &self.cookie
    }

    /// True when the account lacks the replication right and DirSync runs with
    /// `LDAP_DIRSYNC_OBJECT_SECURITY`.
    pub fn object_security(&self) -> bool {
        self.flags & LDAP_DIRSYNC_OBJECT_SECURITY != 0
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Unbind and close the connection.
    pub async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

/// Two entries for one object in one poll: the later one's values, the union of the names.
fn merge(into: &mut DirSyncChange, later: DirSyncChange) {
    for a in later.changed {
        if !into.changed.contains(&a) {
            into.changed.push(a);
        }
    }
    into.dn = later.dn;
    into.pwd_last_set = later.pwd_last_set.or(into.pwd_last_set);
    into.user_account_control = later.user_account_control.or(into.user_account_control);
    into.is_group |= later.is_group;
    if into.is_group {
        into.kind = ObjectKind::Other;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_value_is_the_documented_sequence() {
        assert_eq!(
            request_value(0, 0, b""),
            vec![0x30, 0x08, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x04, 0x00]
        );
        let v = request_value(1, 1_048_576, &[0xaa; 200]);
        assert_eq!(&v[..4], &[0x30, 0x81, 0xd3, 0x02]);
        assert_eq!(&v[4..6], &[0x01, 0x01]);
        assert_eq!(&v[6..11], &[0x02, 0x03, 0x10, 0x00, 0x00]);
        assert_eq!(&v[11..14], &[0x04, 0x81, 200]);
        assert_eq!(ber_integer(0x8000_0000), vec![0x02, 0x05, 0, 0x80, 0, 0, 0]);
        assert_eq!(ber_integer(-1), vec![0x02, 0x01, 0xff]);
        assert_eq!(ber_integer(128), vec![0x02, 0x02, 0x00, 0x80]);
    }

    #[test]
    fn response_parses_and_junk_is_refused() {
        // What Samba sent in the lab: moreResults 0, unused 0, a 108-byte cookie.
        let mut cookie = b"MSDS".to_vec();
        cookie.resize(108, 7);
        let mut body = ber_integer(0);
        body.extend(ber_integer(0));
        body.extend(ber_tlv(0x04, &cookie));
        let v = ber_tlv(0x30, &body);
        assert_eq!(parse_response(&v), Some((false, cookie.clone())));
        let mut body = ber_integer(1);
        body.extend(ber_integer(0));
        body.extend(ber_tlv(0x04, b"c"));
        assert_eq!(
            parse_response(&ber_tlv(0x30, &body)),
            Some((true, b"c".to_vec()))
        );
        for junk in [
            &[][..],
            &[0x30, 0x00],
            &[0x04, 0x01, 0x00],
            &[0x30, 0x05, 0x02],
        ] {
            assert_eq!(parse_response(junk), None, "{junk:?}");
        }
    }

    fn entry(attrs: &[(&str, &[&str])]) -> SearchEntry {
        let mut e = SearchEntry {
            dn: "CN=u,OU=x,DC=phs,DC=test".into(),
            attrs: Default::default(),
            bin_attrs: Default::default(),
        };
        e.bin_attrs
            .insert("objectGUID".into(), vec![(0u8..16).collect()]);
        e.attrs.insert("instanceType".into(), vec!["4".into()]);
        for (k, v) in attrs {
            e.attrs
                .insert(k.to_string(), v.iter().map(|s| s.to_string()).collect());
        }
        e
    }

    #[test]
    fn entries_say_what_changed() {
        let c =
            DirSyncChange::from_entry(&entry(&[("pwdLastSet", &["134405833523564010"])])).unwrap();
        assert!(c.password_changed() && !c.is_group);
        assert_eq!(c.kind, ObjectKind::User);
        assert_eq!(c.pwd_last_set, Some(FileTime(134405833523564010)));
        assert_eq!(c.changed, vec!["pwdlastset"]);
        let c = DirSyncChange::from_entry(&entry(&[("userAccountControl", &["514"])])).unwrap();
        assert!(!c.password_changed());
        assert_eq!(c.user_account_control, Some(514));
        let c = DirSyncChange::from_entry(&entry(&[("member", &["CN=a,DC=x"])])).unwrap();
        assert!(c.is_group && c.kind == ObjectKind::Other);
        let c = DirSyncChange::from_entry(&entry(&[(
            "objectClass",
            &["top", "person", "organizationalPerson", "user", "computer"],
        )]))
        .unwrap();
        assert_eq!(c.kind, ObjectKind::Computer);
        assert!(c.changed.is_empty());
        let mut no_guid = entry(&[]);
        no_guid.bin_attrs.clear();
        assert!(DirSyncChange::from_entry(&no_guid).is_none());
    }
}
