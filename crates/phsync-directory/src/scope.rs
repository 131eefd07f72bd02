//! Which users are in scope, and the search that lists them (paged, or unpaged on Samba).
//!
//! In scope: `objectClass=user` and `objectCategory=person`, not `inetOrgPerson`, not
//! `computer`, not `isCriticalSystemObject=TRUE` (krbtgt, Guest and — in Samba as in Windows —
//! Administrator), and enabled unless `include_disabled`. Then:
//! - `scope_ous`: the user lies in (the subtree of) one of these DNs;
//! - `scope_groups`: the user is a member, directly or through nested groups, of one of these
//!   groups (LDAP_MATCHING_RULE_IN_CHAIN on memberOf);
//! - both given: in one of the OUs AND in one of the groups. Neither: the whole domain.

use std::collections::BTreeMap;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::controls::RawControl;
use ldap3::{Scope, SearchEntry};

use super::connect::{op_error, Directory};
use super::entry::object_guid;
use super::error::DirectoryError;
use super::filter::{escape_filter_bytes, escape_filter_value};
use super::users::{DirectoryUser, Guid, USER_ATTRS};

/// Entries per page requested in the simple paged results control (RFC 2696) of every
/// paged search. A DC returns at most its MaxPageSize per page (AD's default: 1000).
/// The one definition of this wire limit.
pub const PAGE_SIZE: i32 = 500;

const RESULT_NO_SUCH_OBJECT: u32 = 32;
const RESULT_SIZE_LIMIT_EXCEEDED: u32 = 4;
const RESULT_ADMIN_LIMIT_EXCEEDED: u32 = 11;

/// The answers of a DC that caps the entries of an unpaged search.
fn is_a_limit(rc: u32) -> bool {
    matches!(rc, RESULT_SIZE_LIMIT_EXCEEDED | RESULT_ADMIN_LIMIT_EXCEEDED)
}

/// One search's request.
struct Query<'a> {
    base: &'a str,
    scope: Scope,
    filter: &'a str,
    attrs: &'a [&'a str],
    show_deleted: bool,
    paged: bool,
}

/// The user scope: filter options, OUs and groups (DNs or sAMAccountNames).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserScope {
    pub include_disabled: bool,
    pub ous: Vec<String>,
    pub groups: Vec<String>,
}

/// The filter every user object must match to be considered at all (resolve uses it too).
pub(crate) const PERSON_FILTER: &str = "(objectClass=user)(objectCategory=person)(!(objectClass=inetOrgPerson))(!(objectClass=computer))";

/// GUIDs per search of [`Directory::scoped_users_among`] (keeps the filter short).
const GUIDS_PER_SEARCH: usize = 100;

/// USN windows up to this wide are asked as equalities (a few changes: a no-change or
/// 100-change cycle stays well under it).
const USN_EQUALITIES_MAX: i64 = 256;

/// The filter clause for objects changed after `since` (up to `upto`, this DC's
/// highestCommittedUSN now), or `None` when nothing was written since. Samba indexes
/// uSNChanged for equality only: `(uSNChanged>=n)` reads every object in the domain (~9 µs
/// each on the lab DC, about a second per search at 100,000 users), while each equality is
/// one index lookup. So a narrow window is asked as `(|(uSNChanged=n)..)`, a wide one (many
/// changes; Windows indexes the range) as `(uSNChanged>=n)`. An object changed again after
/// `upto` is left to the next call, which starts from `upto`.
fn usn_window(since: i64, upto: i64) -> Option<String> {
    if upto <= since {
        return None;
    }
    let first = since.saturating_add(1);
    if upto.saturating_sub(since) > USN_EQUALITIES_MAX {
        return Some(format!("(uSNChanged>={first})"));
    }
    let mut f = String::from("(|");
    for usn in first..=upto {
        f.push_str(&format!("(uSNChanged={usn})"));
    }
    f.push(')');
    Some(f)
}

/// `(|(objectGUID=..)..)` for the given GUIDs.
fn guid_filter(guids: &[Guid]) -> String {
    let mut f = String::from("(|");
    for g in guids {
        f.push_str(&format!("(objectGUID={})", escape_filter_bytes(&g.0)));
    }
    f.push(')');
    f
}

/// LDAP_SERVER_SHOW_DELETED_OID: tombstones are returned too.
const SHOW_DELETED: &str = "1.2.840.113556.1.4.417";

/// What changed in the user scope since a USN (see [`Directory::scope_changes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeChanges {
    /// Users in scope now whose object changed (any attribute, the password included).
    pub in_scope: Vec<DirectoryUser>,
    /// User objects that changed and are not in scope now: disabled, moved out of the
    /// scoped OUs, no longer a plain user, or deleted. Most were never in scope.
    pub out_of_scope: Vec<Guid>,
}

/// The complete in-scope filter, given the groups already resolved to DNs.
pub(crate) fn scope_filter(include_disabled: bool, group_dns: &[String]) -> String {
    let mut f = format!("(&{PERSON_FILTER}(!(isCriticalSystemObject=TRUE))");
    if !include_disabled {
        f.push_str("(!(userAccountControl:1.2.840.113556.1.4.803:=2))");
    }
    if !group_dns.is_empty() {
        f.push_str("(|");
        for g in group_dns {
            f.push_str(&format!(
                "(memberOf:1.2.840.113556.1.4.1941:={})",
                escape_filter_value(g)
            ));
        }
        f.push(')');
    }
    f.push(')');
    f
}

impl Directory {
    /// All in-scope users, sorted by sAMAccountName (case-insensitive), each once.
    pub async fn users(&mut self, scope: &UserScope) -> Result<Vec<DirectoryUser>, DirectoryError> {
        let mut group_dns = Vec::new();
        for g in &scope.groups {
            group_dns.push(self.resolve_group(g).await?);
        }
        let bases = if scope.ous.is_empty() {
            vec![self.root_dse.default_naming_context.clone()]
        } else {
            let mut v = Vec::new();
            for ou in &scope.ous {
                self.check_exists(ou).await?;
                v.push(ou.trim().to_string());
            }
            v
        };
        let filter = scope_filter(scope.include_disabled, &group_dns);
        let mut by_guid = BTreeMap::new();
        for base in &bases {
            for u in self.search_users(base, Scope::Subtree, &filter).await? {
                by_guid.insert(u.object_guid, u);
            }
        }
        let mut users: Vec<DirectoryUser> = by_guid.into_values().collect();
        users.sort_by_cached_key(|u| u.sam_account_name.to_lowercase());
        Ok(users)
    }

    /// What changed in the scope since `since_usn` (a `highestCommittedUSN` of this DC read
    /// before an earlier scope read), up to this connection's `highestCommittedUSN` (read at
    /// bind; the caller stores it as the next mark), from the DC's change tracking: three
    /// searches on `uSNChanged` (none when nothing was written since), so the cost follows
    /// the changes, not the domain. `None` when change
    /// tracking cannot see every way in or out of the scope: with scope groups, a
    /// membership change touches the group, not the user, so the caller reads the whole
    /// scope instead. Moving a whole OU subtree changes no user's uSNChanged either: the
    /// caller re-reads the whole scope periodically as a safety net.
    pub async fn scope_changes(
        &mut self,
        scope: &UserScope,
        since_usn: i64,
    ) -> Result<Option<ScopeChanges>, DirectoryError> {
        if !scope.groups.is_empty() {
            return Ok(None);
        }
        let Some(changed) = usn_window(since_usn, self.root_dse.highest_committed_usn) else {
            // Nothing was written on this DC since the mark: nothing to ask.
            return Ok(Some(ScopeChanges {
                in_scope: Vec::new(),
                out_of_scope: Vec::new(),
            }));
        };
        let bases = if scope.ous.is_empty() {
            vec![self.root_dse.default_naming_context.clone()]
        } else {
            scope.ous.iter().map(|ou| ou.trim().to_string()).collect()
        };
        // The USN clause first: Samba evaluates an AND in order, and the cheap comparison
        // turns most objects away before objectCategory's DN comparison is made.
        let in_scope_filter = format!("(&{changed}{})", scope_filter(scope.include_disabled, &[]));
        let mut in_scope = BTreeMap::new();
        for base in &bases {
            for u in self
                .search_users(base, Scope::Subtree, &in_scope_filter)
                .await?
            {
                in_scope.insert(u.object_guid, u);
            }
        }
        let domain = self.root_dse.default_naming_context.clone();
        let mut out_of_scope = std::collections::BTreeSet::new();
        let all_changed = format!("(&{changed}{PERSON_FILTER})");
        for e in self
            .paged_search(&domain, Scope::Subtree, &all_changed, &["objectGUID"])
            .await?
        {
            let g = object_guid(&e)?;
            if !in_scope.contains_key(&g) {
                out_of_scope.insert(g);
            }
        }
        // Deleted users: tombstones keep objectClass and objectGUID (not objectCategory).
        let deleted = format!("(&{changed}(isDeleted=TRUE)(objectClass=user))");
        for e in self
            .paged_search_with(&domain, Scope::Subtree, &deleted, &["objectGUID"], true)
            .await?
        {
            out_of_scope.insert(object_guid(&e)?);
        }
        Ok(Some(ScopeChanges {
            in_scope: in_scope.into_values().collect(),
            out_of_scope: out_of_scope.into_iter().collect(),
        }))
    }

    /// Those of `guids` that are in scope, by the same rules as [`Directory::users`], in one
    /// search per scope base (per 100 GUIDs): what a change notification needs, without
    /// listing the whole scope.
    pub async fn scoped_users_among(
        &mut self,
        scope: &UserScope,
        guids: &[Guid],
    ) -> Result<Vec<DirectoryUser>, DirectoryError> {
        if guids.is_empty() {
            return Ok(Vec::new());
        }
        let mut group_dns = Vec::new();
        for g in &scope.groups {
            group_dns.push(self.resolve_group(g).await?);
        }
        let bases = if scope.ous.is_empty() {
            vec![self.root_dse.default_naming_context.clone()]
        } else {
            scope.ous.iter().map(|ou| ou.trim().to_string()).collect()
        };
        let in_scope = scope_filter(scope.include_disabled, &group_dns);
        let mut by_guid = BTreeMap::new();
        for chunk in guids.chunks(GUIDS_PER_SEARCH) {
            let filter = format!("(&{in_scope}{})", guid_filter(chunk));
            for base in &bases {
                for u in self.search_users(base, Scope::Subtree, &filter).await? {
                    by_guid.insert(u.object_guid, u);
                }
            }
        }
        Ok(by_guid.into_values().collect())
    }

    /// The user objects (class user/person, not inetOrgPerson or computer; no scope rules)
    /// among `guids`, wherever they are in the domain; a GUID that names no such object is
    /// left out.
    pub async fn users_by_guid(
        &mut self,
        guids: &[Guid],
    ) -> Result<Vec<DirectoryUser>, DirectoryError> {
        let base = self.root_dse.default_naming_context.clone();
        let mut out = Vec::new();
        for chunk in guids.chunks(GUIDS_PER_SEARCH) {
            let filter = format!("(&{PERSON_FILTER}{})", guid_filter(chunk));
            out.extend(self.search_users(&base, Scope::Subtree, &filter).await?);
        }
        Ok(out)
    }

    /// User entries; referrals are skipped, never followed. Unpaged first where that is
    /// cheaper ([`Directory::unpaged_first`]): a size or admin limit in the answer (a DC
    /// capping unpaged searches) drops what was read and reads it again, paged.
    pub(crate) async fn search_users(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
    ) -> Result<Vec<DirectoryUser>, DirectoryError> {
        let mut query = Query {
            base,
            scope,
            filter,
            attrs: USER_ATTRS,
            show_deleted: false,
            paged: !self.unpaged_first,
        };
        loop {
            // Each entry becomes a user as it arrives: the raw entries (attribute maps of
            // byte strings, several times a user's size) are never all held at once.
            let realm = self.realm.clone();
            let mut users = Vec::new();
            let read = self
                .search_each(&query, &mut |e| {
                    users.push(DirectoryUser::from_entry(&e, &realm)?);
                    Ok(())
                })
                .await;
            match read {
                Err(DirectoryError::Ldap { rc, .. }) if !query.paged && is_a_limit(rc) => {
                    tracing::debug!(rc, base, "unpaged search refused by a limit: paged");
                    query.paged = true;
                }
                read => return read.map(|()| users),
            }
        }
    }

    /// A paged search returning plain entries. `noSuchObject` on the base gives an empty list.
    pub(crate) async fn paged_search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        self.paged_search_with(base, scope, filter, attrs, false)
            .await
    }

    /// [`Directory::paged_search`], with tombstones too when `show_deleted`.
    pub(crate) async fn paged_search_with(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        show_deleted: bool,
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let mut out = Vec::new();
        self.paged_search_each(base, scope, filter, attrs, show_deleted, &mut |e| {
            out.push(e);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// A paged search handing each entry to `on_entry` as it arrives (an error from it ends
    /// the search). `noSuchObject` on the base hands none.
    pub(crate) async fn paged_search_each(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        show_deleted: bool,
        on_entry: &mut (dyn FnMut(SearchEntry) -> Result<(), DirectoryError> + Send),
    ) -> Result<(), DirectoryError> {
        let query = Query {
            base,
            scope,
            filter,
            attrs,
            show_deleted,
            paged: true,
        };
        self.search_each(&query, on_entry).await
    }

    /// One search, paged or not, handing each entry to `on_entry` as it arrives.
    async fn search_each(
        &mut self,
        query: &Query<'_>,
        on_entry: &mut (dyn FnMut(SearchEntry) -> Result<(), DirectoryError> + Send),
    ) -> Result<(), DirectoryError> {
        let base = query.base;
        let op = format!("search under {base}");
        let attrs: Vec<String> = query.attrs.iter().map(|s| s.to_string()).collect();
        let mut adapters: Vec<Box<dyn Adapter<_, _>>> = vec![Box::new(EntriesOnly::new())];
        let url = self.url.clone();
        let timeout = self.timeout;
        let mut ldap = self.ldap.clone();
        ldap.with_timeout(timeout);
        if query.paged {
            adapters.push(Box::new(PagedResults::new(self.page_size)));
        }
        if query.show_deleted {
            ldap.with_controls(RawControl {
                ctype: SHOW_DELETED.into(),
                crit: true,
                val: None,
            });
        }
        let mut stream = ldap
            .streaming_search_with(adapters, base, query.scope, query.filter, attrs)
            .await
            .map_err(|e| op_error(e, &url, &op, timeout))?;
        loop {
            match stream.next().await {
                Ok(Some(entry)) => {
                    if entry.is_ref() || entry.is_intermediate() {
                        continue;
                    }
                    if let Err(e) = on_entry(SearchEntry::construct(entry)) {
                        // The rest of the search is read and dropped: the connection stays
                        // in step for the next operation.
                        while let Ok(Some(_)) = stream.next().await {}
                        let _ = stream.finish().await;
                        return Err(e);
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(op_error(e, &url, &op, timeout)),
            }
        }
        let result = stream.finish().await;
        match result.rc {
            0 | RESULT_NO_SUCH_OBJECT => Ok(()),
            rc => Err(DirectoryError::Ldap {
                operation: op,
                rc,
                text: result.text.trim_end_matches('\0').to_string(),
            }),
        }
    }

    /// Fail with `UnknownOu` unless `dn` names an existing object.
    async fn check_exists(&mut self, dn: &str) -> Result<(), DirectoryError> {
        let found = self
            .paged_search(dn.trim(), Scope::Base, "(objectClass=*)", &["objectClass"])
            .await?;
        if found.is_empty() {
            return Err(DirectoryError::UnknownOu { dn: dn.to_string() });
        }
        Ok(())
    }

    /// A group given as DN or sAMAccountName → its DN (as the DC spells it).
    pub async fn resolve_group(&mut self, name: &str) -> Result<String, DirectoryError> {
        let name = name.trim();
        let found = if name.contains('=') {
            self.paged_search(name, Scope::Base, "(objectClass=group)", &["cn"])
                .await?
        } else {
            let base = self.root_dse.default_naming_context.clone();
            let filter = format!(
                "(&(objectClass=group)(sAMAccountName={}))",
                escape_filter_value(name)
            );
            self.paged_search(&base, Scope::Subtree, &filter, &["cn"])
                .await?
        };
        match found.as_slice() {
            [one] => Ok(one.dn.clone()),
            _ => Err(DirectoryError::UnknownGroup {
                name: name.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_shapes() {
        let f = scope_filter(false, &[]);
        assert!(ldap3::parse_filter(&f).is_ok(), "{f}");
        assert!(f.contains("(!(userAccountControl:1.2.840.113556.1.4.803:=2))"));
        assert!(f.contains("(!(isCriticalSystemObject=TRUE))"));
        let f = scope_filter(true, &["CN=G (x),DC=a".into(), "CN=H,DC=a".into()]);
        assert!(ldap3::parse_filter(&f).is_ok(), "{f}");
        assert!(!f.contains("803"));
        assert!(f.contains("(|(memberOf:1.2.840.113556.1.4.1941:=CN=G \\28x\\29,DC=a)(memberOf:1.2.840.113556.1.4.1941:=CN=H,DC=a))"), "{f}");
    }

    #[test]
    fn usn_windows_are_equalities_when_narrow_and_a_range_when_wide() {
        assert_eq!(usn_window(100, 100), None, "nothing written since");
        assert_eq!(usn_window(100, 90), None);
        assert_eq!(
            usn_window(100, 103).unwrap(),
            "(|(uSNChanged=101)(uSNChanged=102)(uSNChanged=103))"
        );
        let edge = usn_window(0, USN_EQUALITIES_MAX).unwrap();
        assert!(ldap3::parse_filter(&edge).is_ok());
        assert_eq!(
            edge.matches("(uSNChanged=").count() as i64,
            USN_EQUALITIES_MAX
        );
        assert!(edge.ends_with(&format!("(uSNChanged={USN_EQUALITIES_MAX}))")));
        assert_eq!(
            usn_window(0, USN_EQUALITIES_MAX + 1).unwrap(),
            "(uSNChanged>=1)"
        );
        assert_eq!(
            usn_window(i64::MAX - 1, i64::MAX).unwrap(),
            format!("(|(uSNChanged={}))", i64::MAX)
        );
    }
}
