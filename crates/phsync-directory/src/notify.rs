//! Change notifications: the DC pushes each change of the domain NC as it commits, so the
//! engine can sync a password seconds after it was set instead of at the next poll.
//!
//! # What the DC requires (MS-ADTS 3.1.1.3.4.1.9 LDAP_SERVER_NOTIFICATION_OID)
//!
//! - The control `1.2.840.113556.1.4.528` on a search request, with no control value; we mark
//!   it critical, so a DC that does not know it refuses the search (unavailableCriticalExtension)
//!   instead of running an ordinary one-shot search.
//! - Filter: `(objectClass=*)` only; anything else is unwillingToPerform. (Samba's
//!   `dsdb_notification` module also accepts presence filters on objectGUID,
//!   distinguishedName and name.)
//! - Scope: base, one-level or subtree; Windows 2000 DCs allow subtree only at the root of an
//!   NC, later DCs anywhere. We watch the whole domain NC: subtree at `defaultNamingContext`.
//!   No paging, sorting or other controls: the search never completes, so there is nothing to
//!   page. Microsoft's "Change Notifications in Active Directory Domain Services" warns that a
//!   subtree notification on an NC head sends an entry for every change in the NC: expected
//!   here, the consumer decides what matters.
//! - Delivery: no immediate answer. Each time an object in scope changes, the DC sends a
//!   SearchResultEntry with the search's messageID, carrying the *requested* attributes (not
//!   the changed ones). The search never sends SearchResultDone unless it fails; the client
//!   ends it with an Abandon of that messageID (we do, in [`ChangeNotifications::close`]).
//! - Limits (MS-ADTS 3.1.1.3.4.6 LDAP Policies): at most MaxNotificationPerConn (default 5)
//!   notification searches per connection (Samba answers adminLimitExceeded beyond), and the
//!   caller must be able to read the objects (changes to unreadable objects are not sent).
//!   The search occupies its connection in practice, so it gets a connection of its own.
//!
//! # Samba specifics (source4/dsdb/samdb/ldb_modules/dsdb_notification.c,
//! source4/ldap_server/ldap_server.c)
//!
//! Samba does not push from the commit path: it re-runs each pending notification search as
//! `uSNChanged >= last seen + 1`, 100 ms after an LDAP write handled by the same LDAP server
//! process and otherwise every 5 s. The first run only records the highest USN. So on Samba:
//! - a change made over LDAP arrives about 0.15 s after it commits (the lab tests measure it);
//!   one made elsewhere (samba-tool on the DC's database, kpasswd, SAMR, inbound replication)
//!   waits for the 5 s re-run — measured 1–5 s with `samba-tool user setpassword`;
//! - several changes to one object between two runs arrive as one entry;
//! - a deleted object is not reported (the re-run search does not show tombstones; observed
//!   with subtree deletes of test OUs): deletions need the catch-up/periodic cycle;
//! - the search outlives Samba's 120 s search time limit (observed running for 200 s), and
//!   while it is pending Samba does not apply its idle timeout to the connection.
//!
//! # Idle connections and keep-alive
//!
//! AD closes connections idle for MaxConnIdleTime (LDAP Policies; default 900 s), Samba for
//! its `conn_idle_time` (900 s, from the same policy object) — Samba exempts connections with
//! a pending notification, AD documents no such exemption. A TCP path (NAT, firewall) may also
//! drop a quiet connection without telling either side. So [`ChangeNotifications::next`]
//! sends a keep-alive on the notification's own connection — a RootDSE read — after
//! [`DEFAULT_KEEPALIVE`] without traffic; no answer within the operation timeout ends the
//! stream with [`DirectoryError::NotificationsLost`].
//!
//! # What the consumer must do
//!
//! Open the notifications first, then run a catch-up cycle (read the current state), as
//! Microsoft's example does: a change between the two is then seen twice rather than never
//! (compare uSNChanged to drop stale ones). On `NotificationsLost`, reconnect with backoff and
//! run a catch-up cycle again; on `NotificationsUnsupported`, poll.

use std::time::Duration;

use ldap3::controls::RawControl;
use ldap3::{Ldap, RequestId, ResultEntry, Scope, SearchEntry, SearchStream};
use tokio::time::Instant;

use super::connect::{op_error, Directory};
use super::entry;
use super::error::DirectoryError;
use super::target::LdapTarget;
use super::users::{DirectoryUser, FileTime, Guid, USER_ATTRS};

/// LDAP_SERVER_NOTIFICATION_OID (MS-ADTS 3.1.1.3.4.1.9).
pub const LDAP_SERVER_NOTIFICATION_OID: &str = "1.2.840.113556.1.4.528";

/// How long a notification connection may stay quiet before [`ChangeNotifications::next`]
/// checks it with a RootDSE read: well under AD's default MaxConnIdleTime (900 s).
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(300);

/// The attributes each notification carries besides [`USER_ATTRS`]: what tells a user from
/// any other object, and a deletion from a change.
const EXTRA_ATTRS: &[&str] = &[
    "objectClass",
    "objectCategory",
    "isDeleted",
    "distinguishedName",
];

const RC_ADMIN_LIMIT_EXCEEDED: u32 = 11;
const RC_UNAVAILABLE_CRITICAL_EXTENSION: u32 = 12;
const RC_UNWILLING_TO_PERFORM: u32 = 53;

/// What kind of object changed, by the same rules as the user scope (`PERSON_FILTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// objectClass user, objectCategory Person, not inetOrgPerson, not computer: a user the
    /// sync may care about (the scope rules — OUs, groups, disabled, critical objects — still
    /// apply: resolve it by GUID and check).
    User,
    /// A user subclass that password hash sync skips.
    InetOrgPerson,
    /// A computer account (or a subclass: managed service accounts).
    Computer,
    /// Anything else: OUs, groups, containers, the domain object, DNS records.
    Other,
}

/// One change notification: the object as it is after the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedObject {
    pub dn: String,
    pub object_guid: Guid,
    pub kind: ObjectKind,
    /// The objectClass values (the chain from `top` to the structural class).
    pub object_classes: Vec<String>,
    /// uSNChanged of the object on this DC, if sent (compare with a catch-up's cursor).
    pub usn_changed: Option<i64>,
    /// isDeleted = TRUE (a tombstone; AD may report deletions, Samba does not).
    pub is_deleted: bool,
    /// For [`ObjectKind::User`], the user record parsed as [`Directory::users`] parses it;
    /// `None` when the entry lacks what that needs (e.g. a tombstone's stripped attributes).
    pub user: Option<DirectoryUser>,
}

impl ChangedObject {
    /// True for [`ObjectKind::User`].
    pub fn is_user(&self) -> bool {
        self.kind == ObjectKind::User
    }

    /// pwdLastSet of a user, when known.
    pub fn pwd_last_set(&self) -> Option<FileTime> {
        self.user.as_ref().map(|u| u.pwd_last_set)
    }

    /// Build from a notification entry; `None` if it has no usable objectGUID (never the
    /// case for a real AD object).
    pub(crate) fn from_entry(entry: &SearchEntry, realm: &str) -> Option<ChangedObject> {
        let values = |name: &str| entry::values(entry, name);
        let first = |name: &str| entry::text(entry, name);
        let object_guid = entry::object_guid(entry).ok()?;
        let object_classes = values("objectClass");
        let kind = classify(&object_classes, first("objectCategory").as_deref());
        let user = if kind == ObjectKind::User {
            DirectoryUser::from_entry(entry, realm).ok()
        } else {
            None
        };
        Some(ChangedObject {
            dn: entry.dn.clone(),
            object_guid,
            kind,
            object_classes,
            usn_changed: first("uSNChanged").and_then(|v| v.trim().parse().ok()),
            is_deleted: first("isDeleted").is_some_and(|v| v.eq_ignore_ascii_case("TRUE")),
            user,
        })
    }
}

/// The [`ObjectKind`] of an object from its objectClass values and objectCategory DN.
pub(crate) fn classify(object_classes: &[String], object_category: Option<&str>) -> ObjectKind {
    let has = |c: &str| object_classes.iter().any(|v| v.eq_ignore_ascii_case(c));
    if has("computer") {
        ObjectKind::Computer
    } else if has("inetOrgPerson") {
        ObjectKind::InetOrgPerson
    } else if has("user")
        && object_category.is_none_or(|c| {
            c.get(..10)
                .is_some_and(|head| head.eq_ignore_ascii_case("CN=Person,"))
        })
    {
        ObjectKind::User
    } else {
        ObjectKind::Other
    }
}

/// The error for a notification search the DC completed (it never does on success).
pub(crate) fn search_done_error(url: &str, rc: u32, text: &str) -> DirectoryError {
    let text = text.trim_end_matches('\0').trim();
    let detail = if text.is_empty() {
        format!("LDAP result {rc}")
    } else {
        format!("LDAP result {rc}: {text}")
    };
    match rc {
        RC_UNAVAILABLE_CRITICAL_EXTENSION | RC_UNWILLING_TO_PERFORM => {
            DirectoryError::NotificationsUnsupported {
                url: url.to_string(),
                detail: format!("the notification search was refused with {detail}"),
            }
        }
        RC_ADMIN_LIMIT_EXCEEDED => DirectoryError::NotificationsLost {
            url: url.to_string(),
            detail: format!("{detail} (MaxNotificationPerConn reached)"),
        },
        _ => DirectoryError::NotificationsLost {
            url: url.to_string(),
            detail: format!("the DC ended the notification search with {detail}"),
        },
    }
}

/// A running notification search over the whole domain NC, on a connection of its own.
///
/// Drive it with [`next`](Self::next) on the tokio runtime that opened it. Dropping it
/// closes the connection (the DC then forgets the search); [`close`](Self::close) also
/// abandons the search and unbinds first.
pub struct ChangeNotifications {
    stream: SearchStream<'static, String, Vec<String>>,
    /// A handle on the same connection: keep-alive, abandon, unbind.
    ldap: Ldap,
    msgid: RequestId,
    url: String,
    base: String,
    realm: String,
    timeout: Duration,
    keepalive: Duration,
    next_keepalive: Instant,
    /// An entry read while checking that the DC accepted the search.
    pending: Option<ResultEntry>,
    /// The stream has ended (an error was returned once); `next` gives `None` from now on.
    ended: bool,
}

impl std::fmt::Debug for ChangeNotifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeNotifications")
            .field("url", &self.url)
            .field("base", &self.base)
            .field("msgid", &self.msgid)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl ChangeNotifications {
    /// Connect to the DC named by `target` (a connection of its own: the engine's reads use
    /// others), bind with `password`, and start watching the domain NC.
    pub async fn open(
        target: &LdapTarget,
        password: &str,
    ) -> Result<ChangeNotifications, DirectoryError> {
        let dir = Directory::connect(target, password).await?;
        ChangeNotifications::start(dir).await
    }

    /// Start watching the domain NC on `dir`'s connection, which from now on carries only
    /// the notification search (and its keep-alive).
    ///
    /// Fails with [`DirectoryError::NotificationsUnsupported`] when the DC's RootDSE does not
    /// list the control or the DC refuses the search right away. When this returns, the DC
    /// has read the search request before the RootDSE read that follows it; on Samba, which
    /// serves a connection's requests in order, the search is then registered and every later
    /// change is reported.
    pub async fn start(dir: Directory) -> Result<ChangeNotifications, DirectoryError> {
        let Directory {
            mut ldap,
            url,
            timeout,
            realm,
            root_dse,
            ..
        } = dir;
        let controls = supported_controls(&mut ldap, &url, timeout).await?;
        if !controls.iter().any(|c| c == LDAP_SERVER_NOTIFICATION_OID) {
            return Err(DirectoryError::NotificationsUnsupported {
                url,
                detail: format!(
                    "its RootDSE does not list LDAP_SERVER_NOTIFICATION_OID \
                     ({LDAP_SERVER_NOTIFICATION_OID}) in supportedControl"
                ),
            });
        }
        let base = root_dse.default_naming_context;
        let attrs: Vec<String> = USER_ATTRS
            .iter()
            .chain(EXTRA_ATTRS)
            .map(|s| s.to_string())
            .collect();
        let op = format!("notification search under {base}");
        // No timeout on the search itself: ldap3 would abandon it after the first quiet
        // interval. The keep-alive in `next` watches the connection instead.
        let mut stream = ldap
            .with_controls(RawControl {
                ctype: LDAP_SERVER_NOTIFICATION_OID.to_string(),
                crit: true,
                val: None,
            })
            .streaming_search(&base, Scope::Subtree, "(objectClass=*)", attrs)
            .await
            .map_err(|e| op_error(e, &url, &op, timeout))?;
        let msgid = stream.ldap_handle().last_id();
        let mut notifications = ChangeNotifications {
            stream,
            ldap,
            msgid,
            url,
            base,
            realm,
            timeout,
            keepalive: DEFAULT_KEEPALIVE,
            next_keepalive: Instant::now() + DEFAULT_KEEPALIVE,
            pending: None,
            ended: false,
        };
        // A round trip behind the search request, then a look at whether the DC has already
        // answered the search with a refusal.
        notifications.ping().await?;
        match tokio::time::timeout(Duration::ZERO, notifications.stream.next()).await {
            Err(_elapsed) => {}
            Ok(Ok(Some(entry))) => notifications.pending = Some(entry),
            Ok(Ok(None)) => {
                let result = notifications.stream.finish().await;
                return Err(search_done_error(
                    &notifications.url,
                    result.rc,
                    &result.text,
                ));
            }
            Ok(Err(e)) => {
                return Err(DirectoryError::NotificationsLost {
                    url: notifications.url,
                    detail: format!("the connection failed right after the search: {e}"),
                })
            }
        }
        tracing::debug!(url = %notifications.url, base = %notifications.base, "change notifications started");
        Ok(notifications)
    }

    /// The next changed object. `Ok(None)` only after the stream has ended (an error was
    /// returned, or it was already `None`): open a new one.
    ///
    /// Errors: [`DirectoryError::NotificationsLost`] when the connection drops, the
    /// keep-alive gets no answer in time, or the DC ends the search;
    /// [`DirectoryError::NotificationsUnsupported`] when the DC refuses the search late
    /// (after [`start`](Self::start) returned). Either error ends the stream.
    ///
    /// Cancel-safe while it waits for the DC: dropping the future (e.g. in a `select!`
    /// with a shutdown signal) loses no notification.
    pub async fn next(&mut self) -> Result<Option<ChangedObject>, DirectoryError> {
        loop {
            if self.ended {
                return Ok(None);
            }
            let entry = match self.pending.take() {
                Some(entry) => entry,
                None => {
                    let item = tokio::select! {
                        item = self.stream.next() => Some(item),
                        _ = tokio::time::sleep_until(self.next_keepalive) => None,
                    };
                    match item {
                        None => {
                            if let Err(e) = self.ping().await {
                                self.ended = true;
                                return Err(e);
                            }
                            continue;
                        }
                        Some(Ok(Some(entry))) => entry,
                        Some(Ok(None)) => {
                            self.ended = true;
                            let result = self.stream.finish().await;
                            return Err(search_done_error(&self.url, result.rc, &result.text));
                        }
                        Some(Err(e)) => {
                            self.ended = true;
                            return Err(DirectoryError::NotificationsLost {
                                url: self.url.clone(),
                                detail: match e {
                                    ldap3::LdapError::EndOfStream => {
                                        "the connection was closed".to_string()
                                    }
                                    other => format!("the connection failed: {other}"),
                                },
                            });
                        }
                    }
                }
            };
            self.next_keepalive = Instant::now() + self.keepalive;
            if entry.is_ref() || entry.is_intermediate() {
                continue;
            }
            let entry = SearchEntry::construct(entry);
            match ChangedObject::from_entry(&entry, &self.realm) {
                Some(changed) => {
                    tracing::debug!(dn = %changed.dn, guid = %changed.object_guid, kind = ?changed.kind, "change notification");
                    return Ok(Some(changed));
                }
                None => {
                    tracing::warn!(dn = %entry.dn, "change notification without a usable objectGUID: skipped");
                }
            }
        }
    }

    /// Send the keep-alive after `interval` without traffic instead of [`DEFAULT_KEEPALIVE`]
    /// (at least 1 s).
    pub fn set_keepalive(&mut self, interval: Duration) {
        self.keepalive = interval.max(Duration::from_secs(1));
        self.next_keepalive = Instant::now() + self.keepalive;
    }

    /// The DN watched (the domain NC).
    pub fn base_dn(&self) -> &str {
        &self.base
    }

    /// The URL of the DC.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Abandon the search, unbind and close the connection.
    pub async fn close(mut self) {
        let msgid = self.msgid;
        let _ = self.ldap.abandon(msgid).await;
        let _ = self.stream.finish().await;
        let _ = self.ldap.unbind().await;
    }

    /// A RootDSE read on the notification's connection: the keep-alive, and proof that the
    /// connection still answers.
    async fn ping(&mut self) -> Result<(), DirectoryError> {
        let result = self
            .ldap
            .with_timeout(self.timeout)
            .search("", Scope::Base, "(objectClass=*)", vec!["1.1"])
            .await
            .and_then(|r| r.success());
        self.next_keepalive = Instant::now() + self.keepalive;
        result
            .map(|_| ())
            .map_err(|e| DirectoryError::NotificationsLost {
                url: self.url.clone(),
                detail: match e {
                    ldap3::LdapError::Timeout { .. } => format!(
                        "no answer to the keep-alive (a RootDSE read) within {} s",
                        self.timeout.as_secs()
                    ),
                    other => format!("the keep-alive (a RootDSE read) failed: {other}"),
                },
            })
    }
}

/// The RootDSE's supportedControl values.
pub(crate) async fn supported_controls(
    ldap: &mut Ldap,
    url: &str,
    timeout: Duration,
) -> Result<Vec<String>, DirectoryError> {
    let op = "RootDSE supportedControl";
    let (entries, _) = ldap
        .with_timeout(timeout)
        .search("", Scope::Base, "(objectClass=*)", vec!["supportedControl"])
        .await
        .and_then(|r| r.success())
        .map_err(|e| op_error(e, url, op, timeout))?;
    Ok(entries
        .into_iter()
        .filter(|e| !e.is_ref())
        .map(SearchEntry::construct)
        .flat_map(|e| {
            e.attrs
                .into_iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("supportedControl"))
                .flat_map(|(_, v)| v)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    const PERSON: &str = "CN=Person,CN=Schema,CN=Configuration,DC=phs,DC=test";

    #[test]
    fn can_move_to_a_task() {
        fn send<T: Send + 'static>() {}
        send::<ChangeNotifications>();
        send::<ChangedObject>();
    }

    #[test]
    fn kinds() {
        let user = classes(&["top", "person", "organizationalPerson", "user"]);
        assert_eq!(classify(&user, Some(PERSON)), ObjectKind::User);
        assert_eq!(classify(&user, None), ObjectKind::User);
        let mut computer = user.clone();
        computer.push("computer".into());
        assert_eq!(
            classify(
                &computer,
                Some("CN=Computer,CN=Schema,CN=Configuration,DC=x")
            ),
            ObjectKind::Computer
        );
        let mut inet = user.clone();
        inet.push("inetOrgPerson".into());
        assert_eq!(classify(&inet, Some(PERSON)), ObjectKind::InetOrgPerson);
        // A user-class object whose category is not Person (never a PHS user).
        assert_eq!(
            classify(&user, Some("CN=Something,CN=Schema,DC=x")),
            ObjectKind::Other
        );
        assert_eq!(
            classify(&classes(&["top", "organizationalUnit"]), None),
            ObjectKind::Other
        );
        assert_eq!(
            classify(&classes(&["top", "group"]), Some("CN=Group,CN=Schema")),
            ObjectKind::Other
        );
    }

    #[test]
    fn refusals_and_endings() {
        for rc in [12, 53] {
            let e = search_done_error("ldaps://dc", rc, "no\0");
            assert!(
                matches!(e, DirectoryError::NotificationsUnsupported { .. }),
                "{e:?}"
            );
            assert!(
                e.to_string().contains(&format!("LDAP result {rc}: no")),
                "{e}"
            );
        }
        for rc in [11, 1, 51, 80] {
            let e = search_done_error("ldaps://dc", rc, "");
            assert!(
                matches!(e, DirectoryError::NotificationsLost { .. }),
                "{e:?}"
            );
        }
    }

    #[test]
    fn entry_without_guid_is_skipped_and_user_is_parsed() {
        let mut entry = SearchEntry {
            dn: "CN=x,DC=phs,DC=test".into(),
            attrs: Default::default(),
            bin_attrs: Default::default(),
        };
        assert!(ChangedObject::from_entry(&entry, "PHS.TEST").is_none());
        entry
            .bin_attrs
            .insert("objectGUID".into(), vec![(0u8..16).collect()]);
        entry.attrs.insert(
            "objectClass".into(),
            classes(&["top", "person", "organizationalPerson", "user"]),
        );
        entry
            .attrs
            .insert("objectCategory".into(), vec![PERSON.into()]);
        entry.attrs.insert("uSNChanged".into(), vec!["4242".into()]);
        // Not enough for a DirectoryUser (no objectSid): still a user change, no record.
        let c = ChangedObject::from_entry(&entry, "PHS.TEST").unwrap();
        assert!(c.is_user() && c.user.is_none() && !c.is_deleted);
        assert_eq!(c.usn_changed, Some(4242));
        entry.attrs.insert("isDeleted".into(), vec!["TRUE".into()]);
        assert!(
            ChangedObject::from_entry(&entry, "PHS.TEST")
                .unwrap()
                .is_deleted
        );
    }
}
