//! Where and how to connect: built once from validated settings by the engine, so this layer
//! never sees the config file.

use std::path::PathBuf;
use std::time::Duration;

/// How the LDAP connection is secured. TLS always names the CA that must have issued the DC's
/// certificate; an unencrypted connection exists only if the settings allowed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `ldaps://` (TLS from the first byte).
    Ldaps { ca_file: PathBuf },
    /// `ldap://` upgraded with StartTLS before the bind.
    StartTls { ca_file: PathBuf },
    /// `ldap://` with no TLS: only when explicitly allowed.
    Plain,
}

impl Transport {
    /// The CA file, for TLS transports.
    pub fn ca_file(&self) -> Option<&std::path::Path> {
        match self {
            Transport::Ldaps { ca_file } | Transport::StartTls { ca_file } => Some(ca_file),
            Transport::Plain => None,
        }
    }
}

/// One domain controller and the account to bind as (the password is passed at connect time
/// and never stored here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapTarget {
    /// `ldaps://host[:port]` or `ldap://host[:port]`.
    pub url: String,
    pub transport: Transport,
    /// Connect and per-operation timeout.
    pub timeout: Duration,
    /// The name sent in the simple bind (UPN, DN or `DOMAIN\sam`).
    pub bind_name: String,
    /// DNS domain (Kerberos realm), e.g. `PHS.TEST`.
    pub realm: String,
    /// NetBIOS domain name, e.g. `PHS`.
    pub netbios_domain: String,
}
