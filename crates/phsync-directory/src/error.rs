//! The directory layer's one error type. Messages name the URL, the CA file, the account or
//! the object at fault, and never contain the bind password.

use std::path::PathBuf;

/// What is wrong with the bind account when the DC refuses it for a reason other than the
/// password (Active Directory's `data NNN` code in the bind diagnostic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountProblem {
    /// data 533
    Disabled,
    /// data 773 (pwdLastSet = 0)
    MustChangePassword,
    /// data 532
    PasswordExpired,
    /// data 701
    AccountExpired,
    /// data 775
    LockedOut,
}

impl std::fmt::Display for AccountProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AccountProblem::Disabled => "is disabled (AD data 533)",
            AccountProblem::MustChangePassword => {
                "must change its password at next logon (AD data 773)"
            }
            AccountProblem::PasswordExpired => "has an expired password (AD data 532)",
            AccountProblem::AccountExpired => "has expired (AD data 701)",
            AccountProblem::LockedOut => "is locked out (AD data 775)",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// Connection refused, no route, DNS failure, or connect timeout.
    #[error("domain controller unreachable at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    /// The CA file could not be read or holds no certificate.
    #[error("cannot use CA file {path}: {detail}")]
    CaFile { path: PathBuf, detail: String },
    /// TLS handshake failed (e.g. the DC's certificate is not issued by the configured CA).
    #[error("TLS with {url} failed: {detail} (trusted CA file: {ca_file})")]
    Tls {
        url: String,
        ca_file: String,
        detail: String,
    },
    /// LDAP 49, data 52e (or no data code): wrong user name or password.
    #[error("bind as {user} refused: invalid credentials (wrong user name or password)")]
    BadCredentials { user: String },
    /// The bind account exists and the password may be right, but the account cannot log on.
    #[error("bind as {user} refused: the account {problem}")]
    AccountUnusable {
        user: String,
        problem: AccountProblem,
    },
    /// LDAP 8 strongerAuthRequired: the DC refuses simple binds on this connection.
    #[error(
        "{url} requires stronger authentication (LDAP 8 strongerAuthRequired): \
         use ldaps:// or StartTLS instead of plain LDAP"
    )]
    StrongerAuthRequired { url: String },
    /// The DC did not answer an operation in time.
    #[error("{operation} timed out after {seconds} s on {url}")]
    Timeout {
        url: String,
        operation: String,
        seconds: u64,
    },
    /// Any other LDAP result code.
    #[error("{operation} failed: LDAP result {rc}{}", if text.is_empty() { String::new() } else { format!(": {text}") })]
    Ldap {
        operation: String,
        rc: u32,
        text: String,
    },
    /// Another client-side LDAP failure (connection dropped, protocol error).
    #[error("{operation} failed: {detail}")]
    Protocol { operation: String, detail: String },
    #[error("no user {name:?} in the directory")]
    UserNotFound { name: String },
    #[error("{name:?} matches {count} users; use a DN or GUID")]
    AmbiguousUser { name: String, count: usize },
    #[error("scope group {name:?} not found (give a DN or a group's sAMAccountName)")]
    UnknownGroup { name: String },
    #[error("scope OU {dn:?} not found")]
    UnknownOu { dn: String },
    #[error("RootDSE is missing {attribute}")]
    RootDse { attribute: &'static str },
    #[error("entry {dn}: {detail}")]
    MalformedEntry { dn: String, detail: String },
    /// The DC does not do change notifications: its RootDSE does not list
    /// LDAP_SERVER_NOTIFICATION_OID, or it refused the notification search
    /// (unavailableCriticalExtension, unwillingToPerform). Poll instead.
    #[error("{url} does not offer change notifications ({detail}): poll for changes instead")]
    NotificationsUnsupported { url: String, detail: String },
    /// A running notification search ended: the connection dropped, the keep-alive got no
    /// answer, or the DC completed the search. Changes may have been missed since: reconnect
    /// (with backoff) and run a catch-up cycle.
    #[error("change notifications from {url} ended: {detail}")]
    NotificationsLost { url: String, detail: String },
    /// The DC does not offer DirSync (LDAP_SERVER_DIRSYNC_OID), or refuses it even with
    /// the object-security flag.
    #[error("{url} does not offer DirSync ({detail}): poll for changes instead")]
    DirSyncUnsupported { url: String, detail: String },
    /// A DirSync poll failed (connection dropped, timeout, cookie refused): reconnect with
    /// backoff and run a catch-up cycle.
    #[error("DirSync from {url} failed: {detail}")]
    DirSyncLost { url: String, detail: String },
}

/// Map a failed simple bind's result to an error. Active Directory puts `data NNN` (hex) into
/// the diagnostic text of result 49.
pub(crate) fn bind_error(rc: u32, text: &str, user: &str, url: &str) -> DirectoryError {
    let user = user.to_string();
    match rc {
        8 => DirectoryError::StrongerAuthRequired {
            url: url.to_string(),
        },
        49 => match ad_data_code(text).as_deref() {
            Some("533") => DirectoryError::AccountUnusable {
                user,
                problem: AccountProblem::Disabled,
            },
            Some("773") => DirectoryError::AccountUnusable {
                user,
                problem: AccountProblem::MustChangePassword,
            },
            Some("532") => DirectoryError::AccountUnusable {
                user,
                problem: AccountProblem::PasswordExpired,
            },
            Some("701") => DirectoryError::AccountUnusable {
                user,
                problem: AccountProblem::AccountExpired,
            },
            Some("775") => DirectoryError::AccountUnusable {
                user,
                problem: AccountProblem::LockedOut,
            },
            _ => DirectoryError::BadCredentials { user },
        },
        _ => DirectoryError::Ldap {
            operation: format!("bind as {user}"),
            rc,
            text: text.trim_end_matches('\0').trim().to_string(),
        },
    }
}

/// The `data NNN` code of an AD bind diagnostic, lower-cased.
fn ad_data_code(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let rest = &lower[lower.find("data ")? + 5..];
    let code: String = rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    (!code.is_empty()).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AD_49: &str =
        "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data ";

    fn bind(rc: u32, code: &str) -> DirectoryError {
        bind_error(
            rc,
            &format!("{AD_49}{code}, v1db1"),
            "bob@phs.test",
            "ldap://dc",
        )
    }

    #[test]
    fn maps_ad_bind_codes() {
        assert!(matches!(
            bind(49, "52e"),
            DirectoryError::BadCredentials { .. }
        ));
        let cases = [
            ("533", AccountProblem::Disabled),
            ("773", AccountProblem::MustChangePassword),
            ("532", AccountProblem::PasswordExpired),
            ("701", AccountProblem::AccountExpired),
            ("775", AccountProblem::LockedOut),
        ];
        for (code, problem) in cases {
            match bind(49, code) {
                DirectoryError::AccountUnusable { problem: p, user } => {
                    assert_eq!(p, problem);
                    assert_eq!(user, "bob@phs.test");
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        // No data code at all (a non-AD server): still bad credentials.
        assert!(matches!(
            bind_error(49, "", "u", "ldap://dc"),
            DirectoryError::BadCredentials { .. }
        ));
    }

    #[test]
    fn maps_stronger_auth_required() {
        let e = bind_error(8, "00002028: LdapErr: DSID-0C090259, comment: The server requires binds to turn on integrity checking if SSL\\TLS are not already active on the connection, data 0, v4563", "u", "ldap://dc1");
        assert!(matches!(e, DirectoryError::StrongerAuthRequired { .. }));
        let msg = e.to_string();
        assert!(
            msg.contains("ldap://dc1") && msg.contains("stronger"),
            "{msg}"
        );
    }

    #[test]
    fn other_codes_keep_rc_and_text() {
        let e = bind_error(53, "unwilling\0", "u", "ldap://dc");
        assert_eq!(e.to_string(), "bind as u failed: LDAP result 53: unwilling");
    }
}
