//! What a change notification or a DirSync entry says about an object, and what a batch must
//! do about it: nothing (a change PHS does not care about, e.g. only `description`), bring
//! the tenant's user and the scope in line (disabled, moved, renamed), or that and replicate
//! the password (pwdLastSet changed, or nothing is known about the user).
//!
//! The engine knows each in-scope user as the last successful cycle's scope read saw it
//! ([`Known::reset`]) or as the last notification batch resolved it ([`Known::update`]):
//! both had every password up to that state in the tenant or in the retry queue, so a later
//! change that leaves pwdLastSet as known needs no replication.

use std::collections::{HashMap, HashSet};

use phsync_directory::{ChangedObject, DirSyncChange, DirectoryUser, FileTime, Guid, ObjectKind};

/// One changed object, as the listener reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// A user (or a subclass PHS skips: resolving it tells).
    User { guid: Guid, seen: Seen },
    /// A group: its members may have changed.
    Group { guid: Guid },
}

impl Change {
    pub(crate) fn guid(&self) -> Guid {
        match self {
            Change::User { guid, .. } | Change::Group { guid } => *guid,
        }
    }

    /// From a change notification; `None` for objects PHS never looks at (computers, OUs...).
    pub(crate) fn from_notification(c: &ChangedObject) -> Option<Change> {
        let is_group = c
            .object_classes
            .iter()
            .any(|k| k.eq_ignore_ascii_case("group"));
        match c.kind {
            ObjectKind::User | ObjectKind::InetOrgPerson => Some(Change::User {
                guid: c.object_guid,
                seen: match &c.user {
                    Some(u) => Seen::Now(Snapshot::of(u)),
                    None => Seen::Unknown,
                },
            }),
            ObjectKind::Other if is_group => Some(Change::Group {
                guid: c.object_guid,
            }),
            _ => None,
        }
    }

    /// From a DirSync entry.
    pub(crate) fn from_dirsync(c: &DirSyncChange) -> Option<Change> {
        if c.is_group {
            return Some(Change::Group {
                guid: c.object_guid,
            });
        }
        match c.kind {
            ObjectKind::User | ObjectKind::InetOrgPerson => Some(Change::User {
                guid: c.object_guid,
                seen: Seen::Attributes {
                    dn: c.dn.clone(),
                    password: c.password_changed(),
                },
            }),
            _ => None,
        }
    }
}

/// What a change tells of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    /// The object as it is now (a notification carries the requested attributes).
    Now(Snapshot),
    /// DirSync: some PHS-relevant attributes changed, the password among them or not.
    Attributes { dn: String, password: bool },
    /// Nothing usable (an entry that does not parse as a user).
    Unknown,
}

/// The attributes of a user that matter to PHS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    dn: String,
    pwd_last_set: FileTime,
    user_account_control: u32,
    user_principal_name: String,
    display_name: Option<String>,
}

impl Snapshot {
    pub(crate) fn of(u: &DirectoryUser) -> Snapshot {
        Snapshot {
            dn: u.dn.to_ascii_lowercase(),
            pwd_last_set: u.pwd_last_set,
            user_account_control: u.user_account_control,
            user_principal_name: u.user_principal_name.clone(),
            display_name: u.display_name.clone(),
        }
    }
}

/// What a batch does for one user; ordered: the most a user's changes need wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Need {
    /// Nothing PHS cares about changed.
    Nothing,
    /// Resolve and apply scope and attributes (disable, rename); no replication.
    Attributes,
    /// That, and replicate the password.
    Password,
}

/// The in-scope users as last seen (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Known(HashMap<Guid, Snapshot>, bool);

impl Known {
    /// The scope a successful cycle read.
    pub(crate) fn reset(&mut self, in_scope: &[DirectoryUser]) {
        self.0 = in_scope
            .iter()
            .map(|u| (u.object_guid, Snapshot::of(u)))
            .collect();
        self.1 = true;
    }

    /// A successful cycle has filled it: the whole scope is known (before that, only the
    /// users batches resolved).
    pub(crate) fn is_complete(&self) -> bool {
        self.1
    }

    pub(crate) fn update(&mut self, u: &DirectoryUser) {
        self.0.insert(u.object_guid, Snapshot::of(u));
    }

    pub(crate) fn forget(&mut self, guid: &Guid) {
        self.0.remove(guid);
    }

    pub(crate) fn guids(&self) -> HashSet<Guid> {
        self.0.keys().copied().collect()
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, guid: &Guid) -> bool {
        self.0.contains_key(guid)
    }

    /// What `seen` for the user `guid` needs.
    pub(crate) fn need(&self, guid: &Guid, seen: &Seen) -> Need {
        let Some(known) = self.0.get(guid) else {
            // Out of scope as far as we know, or new: resolving tells; a user coming into
            // scope needs its current password.
            return Need::Password;
        };
        match seen {
            Seen::Now(now) if now.pwd_last_set != known.pwd_last_set => Need::Password,
            Seen::Now(now) if now != known => Need::Attributes,
            Seen::Now(_) => Need::Nothing,
            Seen::Attributes { password: true, .. } => Need::Password,
            // DirSync returns only entries with a PHS-relevant attribute changed.
            Seen::Attributes { .. } => Need::Attributes,
            Seen::Unknown => Need::Password,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phsync_directory::{GeneralizedTime, Sid};

    fn user(n: u8, pwd: i64, uac: u32, dn: &str) -> DirectoryUser {
        DirectoryUser {
            dn: dn.into(),
            object_guid: Guid::from_slice(&[n; 16]).unwrap(),
            object_sid: Sid::new(5, vec![21, 1, 2, 3, 1105]).unwrap(),
            rid: 1105,
            sam_account_name: format!("u{n}"),
            user_principal_name: format!("u{n}@phs.test"),
            upn_derived: false,
            display_name: None,
            user_account_control: uac,
            pwd_last_set: FileTime(pwd),
            account_expires: FileTime(0),
            usn_changed: 1,
            when_changed: "20260101000000.0Z".parse::<GeneralizedTime>().unwrap(),
        }
    }

    #[test]
    fn only_a_new_pwd_last_set_or_an_unknown_user_needs_a_replication() {
        let a = user(1, 100, 512, "CN=a,OU=x,DC=t");
        let mut known = Known::default();
        known.reset(std::slice::from_ref(&a));
        let g = a.object_guid;
        // The same user seen again (e.g. only description changed): nothing.
        assert_eq!(known.need(&g, &Seen::Now(Snapshot::of(&a))), Need::Nothing);
        // DN case differs only: nothing.
        let upper = user(1, 100, 512, "CN=A,OU=X,DC=T");
        assert_eq!(
            known.need(&g, &Seen::Now(Snapshot::of(&upper))),
            Need::Nothing
        );
        let disabled = user(1, 100, 514, "CN=a,OU=x,DC=t");
        assert_eq!(
            known.need(&g, &Seen::Now(Snapshot::of(&disabled))),
            Need::Attributes
        );
        let moved = user(1, 100, 512, "CN=a,OU=y,DC=t");
        assert_eq!(
            known.need(&g, &Seen::Now(Snapshot::of(&moved))),
            Need::Attributes
        );
        let changed = user(1, 200, 512, "CN=a,OU=x,DC=t");
        assert_eq!(
            known.need(&g, &Seen::Now(Snapshot::of(&changed))),
            Need::Password
        );
        assert_eq!(known.need(&g, &Seen::Unknown), Need::Password);
        let dirsync = |password| Seen::Attributes {
            dn: "CN=a,OU=x,DC=t".into(),
            password,
        };
        assert_eq!(known.need(&g, &dirsync(true)), Need::Password);
        assert_eq!(known.need(&g, &dirsync(false)), Need::Attributes);
        // Someone not known (new, or out of scope until now): resolve and replicate.
        let b = user(2, 100, 512, "CN=b,OU=x,DC=t");
        assert_eq!(
            known.need(&b.object_guid, &Seen::Now(Snapshot::of(&b))),
            Need::Password
        );
        known.update(&changed);
        assert_eq!(
            known.need(&g, &Seen::Now(Snapshot::of(&changed))),
            Need::Nothing
        );
        known.forget(&g);
        assert!(!known.contains(&g));
        assert!(Need::Password > Need::Attributes && Need::Attributes > Need::Nothing);
    }
}
