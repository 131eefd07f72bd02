//! Resolve one user by sAMAccountName, `DOMAIN\sam`, UPN, DN or objectGUID.

use ldap3::Scope;

use super::connect::Directory;
use super::error::DirectoryError;
use super::filter::{escape_filter_bytes, escape_filter_value};
use super::scope::PERSON_FILTER;
use super::users::{DirectoryUser, Guid};

impl Directory {
    /// Find one user object (class user/person, not inetOrgPerson or computer; scope options
    /// are not applied: see [`Directory::users`]). Accepted forms, tried in this order:
    /// a GUID (`xxxxxxxx-xxxx-...`, braces allowed), a DN (contains `=`), `DOMAIN\sam`
    /// (DOMAIN = the NetBIOS name or the realm), a UPN (contains `@`; a user without a UPN
    /// is found by its derived `sam@realm`), else a sAMAccountName.
    pub async fn resolve_user(&mut self, name: &str) -> Result<DirectoryUser, DirectoryError> {
        let name = name.trim();
        let not_found = || DirectoryError::UserNotFound {
            name: name.to_string(),
        };
        if name.is_empty() {
            return Err(not_found());
        }
        let base = self.root_dse.default_naming_context.clone();
        let found = if let Some(guid) = Guid::parse(name) {
            let f = format!(
                "(&{PERSON_FILTER}(objectGUID={}))",
                escape_filter_bytes(&guid.0)
            );
            self.search_users(&base, Scope::Subtree, &f).await?
        } else if name.contains('=') {
            let f = format!("(&{PERSON_FILTER})");
            match self.search_users(name, Scope::Base, &f).await {
                // invalidDNSyntax: not a DN after all, so no such user.
                Err(DirectoryError::Ldap { rc: 34, .. }) => Vec::new(),
                other => other?,
            }
        } else if let Some((domain, sam)) = name.split_once('\\') {
            let ours = domain.eq_ignore_ascii_case(&self.netbios_domain)
                || domain.eq_ignore_ascii_case(&self.realm);
            if !ours || sam.is_empty() {
                return Err(not_found());
            }
            self.by_sam(&base, sam).await?
        } else if let Some((local, suffix)) = name.rsplit_once('@') {
            let f = format!(
                "(&{PERSON_FILTER}(userPrincipalName={}))",
                escape_filter_value(name)
            );
            let mut found = self.search_users(&base, Scope::Subtree, &f).await?;
            if found.is_empty() && suffix.eq_ignore_ascii_case(&self.realm) && !local.is_empty() {
                // A user without a UPN is known by its derived sam@realm.
                found = self.by_sam(&base, local).await?;
                found.retain(|u| u.upn_derived);
            }
            found
        } else {
            self.by_sam(&base, name).await?
        };
        match found.len() {
            0 => Err(not_found()),
            1 => Ok(found.into_iter().next().expect("one")),
            count => Err(DirectoryError::AmbiguousUser {
                name: name.to_string(),
                count,
            }),
        }
    }

    async fn by_sam(
        &mut self,
        base: &str,
        sam: &str,
    ) -> Result<Vec<DirectoryUser>, DirectoryError> {
        let f = format!(
            "(&{PERSON_FILTER}(sAMAccountName={}))",
            escape_filter_value(sam)
        );
        self.search_users(base, Scope::Subtree, &f).await
    }
}
