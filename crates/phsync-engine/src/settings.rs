//! Validated settings: the config file turned, once, into the values that build each
//! component (the LDAP target, the replication connection, the tenant target, the scope and
//! the sync rules). Every check of the config happens here or in [`Config::parse`]; no layer
//! below re-checks or re-parses it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use phsync_audit::LeakedHashes;
use phsync_directory::{LdapTarget, UserScope};
use phsync_drsr::{Auth, DrsrConfig};
use phsync_tenant::TenantTarget;
use zeroize::Zeroizing;

use crate::config::{AuthMethod, Config, ConfigError, SourceConfig};

/// Everything an engine needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// NetBIOS name of the domain (events and messages).
    pub domain: String,
    /// The DC's LDAP endpoint and bind account.
    pub ldap: LdapTarget,
    /// Where the bind password is read from (at each connect, never cached).
    pub password: PasswordSource,
    /// The DC's replication (MS-DRSR) endpoint and authentication.
    pub replication: ReplicationTarget,
    /// Which users are in scope.
    pub scope: UserScope,
    /// Where digests go.
    pub tenant: TenantTarget,
    /// The engine's state directory (cursor, retry queue, diagnostics, event log).
    pub state_dir: PathBuf,
    /// How the engine treats what it reads.
    pub rules: SyncRules,
    /// `[audit] leaked_hashes`: the list each sync checks every delivered hash against.
    pub leaked: Option<LeakedList>,
}

/// The leaked-hash list, opened (memory-mapped and its format checked) once, with the
/// sign-in policy for users found in it.
#[derive(Debug, Clone)]
pub struct LeakedList {
    pub hashes: Arc<LeakedHashes>,
    /// `[audit] block_leaked_sign_in`.
    pub block_sign_in: bool,
}

impl LeakedList {
    /// Open the list at `path`; a missing, unreadable or malformed file is a config error.
    pub fn open(path: &Path, block_sign_in: bool) -> Result<LeakedList, ConfigError> {
        let hashes =
            LeakedHashes::open(path).map_err(|e| ConfigError::LeakedHashes(e.to_string()))?;
        Ok(LeakedList {
            hashes: Arc::new(hashes),
            block_sign_in,
        })
    }
}

/// The sync rules of `[sync]` beyond the scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncRules {
    /// Microsoft's ForcePasswordChangeOnLogOn.
    pub sync_temporary_passwords: bool,
    /// Microsoft's CloudPasswordPolicyForPasswordSyncedUsersEnabled, set on the tenant by
    /// the first cycle (never by opening an engine).
    pub apply_cloud_password_policy: bool,
    /// Allow MD4/MD5/RC4 on a FIPS-mode host.
    pub allow_non_fips_crypto: bool,
    /// Objects per GetNCChanges batch.
    pub replication_batch: u32,
    /// Time between cycles of `phsync run`.
    pub interval: Duration,
    /// `phsync run` reacts to the DC's change notifications between cycles.
    pub notifications: bool,
    /// Notifications, DirSync, or notifications falling back to DirSync.
    pub change_source: crate::config::ChangeSource,
}

/// Where the bind password comes from: read at use, dropped (zeroized) right after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// A file (refused if world-readable).
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

impl PasswordSource {
    /// Read the password now.
    pub fn read(&self) -> Result<Zeroizing<String>, ConfigError> {
        match self {
            PasswordSource::Env(name) => {
                let value = Zeroizing::new(
                    std::env::var(name)
                        .map_err(|_| ConfigError::PasswordEnv { name: name.clone() })?,
                );
                if value.is_empty() {
                    return Err(ConfigError::EmptyPassword {
                        origin: format!("environment variable {name}"),
                    });
                }
                Ok(value)
            }
            PasswordSource::File(path) => read_password_file(path),
        }
    }
}

fn read_password_file(path: &Path) -> Result<Zeroizing<String>, ConfigError> {
    let perm_err = |source| ConfigError::PasswordFile {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(perm_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o004 != 0 {
            return Err(ConfigError::PasswordFileMode {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let bytes = Zeroizing::new(std::fs::read(path).map_err(perm_err)?);
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        perm_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8",
        ))
    })?;
    // One trailing line ending is not part of the password.
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    if text.is_empty() {
        return Err(ConfigError::EmptyPassword {
            origin: format!("file {}", path.display()),
        });
    }
    Ok(Zeroizing::new(text.to_string()))
}

/// How replication reaches and authenticates to the DC (the password is read at connect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationTarget {
    /// The DC's host: `domain_controller`, or the host of `ldap_url`.
    pub dc_host: String,
    /// DRSUAPI TCP port; `None` asks the endpoint mapper.
    pub rpc_port: Option<u16>,
    pub connect_timeout: Duration,
    pub method: AuthMethod,
    /// NetBIOS domain of the account (NTLM).
    pub account_domain: String,
    /// The account name without domain.
    pub account: String,
    /// Kerberos realm.
    pub realm: String,
    /// Kerberos KDC `host:port`.
    pub kdc: String,
    /// Kerberos service principal, when not `host/<dc_host>`.
    pub spn: Option<String>,
}

impl ReplicationTarget {
    fn from_source(src: &SourceConfig) -> Result<Self, ConfigError> {
        let dc_host = dc_host(src)?;
        let name = src.username.trim();
        let (account_domain, account) = match (name.split_once('\\'), name.split_once('@')) {
            (Some((d, u)), _) => (d.to_string(), u.to_string()),
            (None, Some((u, _))) => (src.netbios_domain.trim().to_string(), u.to_string()),
            (None, None) => (src.netbios_domain.trim().to_string(), name.to_string()),
        };
        Ok(ReplicationTarget {
            kdc: src.kdc.clone().unwrap_or_else(|| {
                if dc_host.contains(':') {
                    format!("[{dc_host}]:88")
                } else {
                    format!("{dc_host}:88")
                }
            }),
            dc_host,
            rpc_port: src.rpc_port,
            connect_timeout: Duration::from_secs(src.timeout_seconds),
            method: src.auth,
            account_domain,
            account,
            realm: src.realm.trim().to_string(),
            spn: src.spn.clone(),
        })
    }

    /// The MS-DRSR client's config, with the password read now.
    pub fn drsr_config(&self, password: &PasswordSource) -> Result<DrsrConfig, ConfigError> {
        let password = password.read()?;
        let auth = match self.method {
            AuthMethod::Ntlm => Auth::Ntlm {
                domain: self.account_domain.clone(),
                user: self.account.clone(),
                password,
            },
            AuthMethod::Kerberos => Auth::Kerberos {
                realm: self.realm.clone(),
                kdc: self.kdc.clone(),
                user: self.account.clone(),
                password,
                spn: self.spn.clone(),
            },
        };
        let mut cfg = DrsrConfig::new(self.dc_host.clone(), auth);
        cfg.port_override = self.rpc_port;
        cfg.connect_timeout = self.connect_timeout;
        Ok(cfg)
    }
}

/// The DC replication talks to: `domain_controller`, or the host of `ldap_url`.
fn dc_host(src: &SourceConfig) -> Result<String, ConfigError> {
    match (&src.domain_controller, &src.ldap_url) {
        (Some(dc), _) => Ok(dc.trim().to_string()),
        (None, Some(url)) => ldap_host_port(url).map(|(host, _)| host).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "cannot take a DC host from source.ldap_url {url:?}"
            ))
        }),
        (None, None) => Err(ConfigError::Invalid(
            "set source.ldap_url or source.domain_controller".into(),
        )),
    }
}

/// `host` and `port` of an `ldap://` or `ldaps://` URL (389 and 636 by default).
pub(crate) fn ldap_host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = if scheme.eq_ignore_ascii_case("ldaps") {
        636
    } else {
        389
    };
    let authority = rest.split('/').next()?;
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default_port,
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (authority, default_port),
        }
    };
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// Read the bind password now and connect to `target`; the password is dropped (zeroized)
/// after the bind.
pub(crate) async fn connect_directory(
    target: &LdapTarget,
    password: &PasswordSource,
) -> Result<phsync_directory::Directory, crate::SyncError> {
    let password = password.read()?;
    Ok(phsync_directory::Directory::connect(target, &password).await?)
}

impl Settings {
    /// Load and validate a config file into settings.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        Settings::from_config(&Config::load(path)?)
    }

    /// Turn a parsed config into settings; a config without `[cloud]` or `[state]` is
    /// refused here (the engine needs both; `phsync directory` needs neither).
    pub fn from_config(config: &Config) -> Result<Settings, ConfigError> {
        let cloud = config.cloud.as_ref().ok_or_else(|| {
            ConfigError::Invalid("the config has no [cloud] section (tenant = \"...\")".into())
        })?;
        let state = config.state.as_ref().ok_or_else(|| {
            ConfigError::Invalid("the config has no [state] section (dir = \"...\")".into())
        })?;
        let src = &config.source;
        Ok(Settings {
            domain: src.netbios_domain.trim().to_string(),
            ldap: src.ldap_target()?,
            password: src.password_source()?,
            replication: ReplicationTarget::from_source(src)?,
            scope: config.sync.scope(),
            tenant: TenantTarget {
                location: cloud.tenant.clone(),
                token_file: cloud.token_file.clone(),
                ca_file: cloud.ca_file.clone(),
            },
            state_dir: state.dir.clone(),
            rules: SyncRules {
                sync_temporary_passwords: config.sync.sync_temporary_passwords,
                apply_cloud_password_policy: config.sync.apply_cloud_password_policy,
                allow_non_fips_crypto: config.sync.allow_non_fips_crypto,
                replication_batch: config.sync.batch_size,
                interval: Duration::from_secs(config.sync.interval_seconds),
                notifications: config.sync.notifications,
                change_source: config.sync.change_source,
            },
            leaked: match &config.audit.leaked_hashes {
                Some(path) => Some(LeakedList::open(path, config.audit.block_leaked_sign_in)?),
                None => None,
            },
        })
    }

    /// Read the bind password and connect to the DC over LDAP.
    pub async fn connect_directory(&self) -> Result<phsync_directory::Directory, crate::SyncError> {
        connect_directory(&self.ldap, &self.password).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[source]
ldap_url = "ldaps://[::1]:636"
ca_file = "ca.pem"
realm = "PHS.TEST"
netbios_domain = "PHS"
username = "PHS\\repl"
password_env = "PHSYNC_TEST_SETTINGS_PW"

[cloud]
tenant = "tenant.db"

[state]
dir = "state"
"#;

    #[test]
    fn settings_are_built_once_from_the_config() {
        let c = Config::parse(BASE, Path::new("/etc/phsync")).unwrap();
        let s = Settings::from_config(&c).unwrap();
        assert_eq!(s.replication.dc_host, "::1");
        assert_eq!(s.replication.kdc, "[::1]:88");
        assert_eq!(
            (
                s.replication.account_domain.as_str(),
                s.replication.account.as_str()
            ),
            ("PHS", "repl")
        );
        assert_eq!(s.tenant.location, "/etc/phsync/tenant.db");
        assert_eq!(s.state_dir, Path::new("/etc/phsync/state"));
        assert_eq!(
            s.password,
            PasswordSource::Env("PHSYNC_TEST_SETTINGS_PW".into())
        );
        assert_eq!(s.rules.replication_batch, 1000);
        assert!(s.rules.notifications, "notifications are on by default");
        let off = BASE.replace("[cloud]", "[sync]\nnotifications = false\n\n[cloud]");
        let s = Settings::from_config(&Config::parse(&off, Path::new("/")).unwrap()).unwrap();
        assert!(!s.rules.notifications);
        assert_eq!(s.rules.change_source, crate::config::ChangeSource::Auto);
        let ds = BASE.replace("[cloud]", "[sync]\nchange_source = \"dirsync\"\n\n[cloud]");
        let s = Settings::from_config(&Config::parse(&ds, Path::new("/")).unwrap()).unwrap();
        assert_eq!(s.rules.change_source, crate::config::ChangeSource::DirSync);
        let bad = BASE.replace("[cloud]", "[sync]\nchange_source = \"usn\"\n\n[cloud]");
        let e = Config::parse(&bad, Path::new("/")).unwrap_err();
        assert!(
            e.to_string().contains("usn") && e.to_string().contains("dirsync"),
            "{e}"
        );
        let typo = BASE.replace("[cloud]", "[sync]\nnotification = false\n\n[cloud]");
        let e = Config::parse(&typo, Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("notification"), "{e}");
    }

    #[test]
    fn missing_engine_sections_are_config_errors() {
        let no_cloud = BASE.replace("[cloud]\ntenant = \"tenant.db\"\n", "");
        let c = Config::parse(&no_cloud, Path::new("/")).unwrap();
        let e = Settings::from_config(&c).unwrap_err();
        assert!(
            matches!(e, ConfigError::Invalid(ref m) if m.contains("[cloud]")),
            "{e}"
        );
    }

    #[test]
    fn the_audit_section_opens_the_leaked_list_once_with_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        phsync_testkit::leaked::write_hibp_list(
            &dir.path().join("pwned.txt"),
            &[("Summer2024!", 5)],
            10,
        );
        let with = |audit: &str| format!("{BASE}\n[audit]\n{audit}\n");
        // Relative to the config file's directory; blocking off by default.
        let c = Config::parse(&with("leaked_hashes = \"pwned.txt\""), dir.path()).unwrap();
        let s = Settings::from_config(&c).unwrap();
        let list = s.leaked.as_ref().unwrap();
        assert!(!list.block_sign_in);
        let nt = phsync_hash::NtHash::from_password("Summer2024!").unwrap();
        assert_eq!(list.hashes.lookup(&nt).unwrap().breach_count, Some(5));
        let c = Config::parse(
            &with("leaked_hashes = \"pwned.txt\"\nblock_leaked_sign_in = true"),
            dir.path(),
        )
        .unwrap();
        assert!(
            Settings::from_config(&c)
                .unwrap()
                .leaked
                .unwrap()
                .block_sign_in
        );
        // No [audit]: no list.
        let c = Config::parse(BASE, dir.path()).unwrap();
        assert!(Settings::from_config(&c).unwrap().leaked.is_none());
        // Blocking without a list, an unknown key, a missing file, a malformed one.
        let e = Config::parse(&with("block_leaked_sign_in = true"), dir.path()).unwrap_err();
        assert!(e.to_string().contains("needs audit.leaked_hashes"), "{e}");
        let e = Config::parse(&with("leaked_hash = \"pwned.txt\""), dir.path()).unwrap_err();
        assert!(e.to_string().contains("leaked_hash"), "{e}");
        let c = Config::parse(&with("leaked_hashes = \"gone.txt\""), dir.path()).unwrap();
        let e = Settings::from_config(&c).unwrap_err().to_string();
        assert!(e.starts_with("audit.leaked_hashes: cannot read"), "{e}");
        assert!(e.contains("gone.txt"), "{e}");
        std::fs::write(dir.path().join("bad.txt"), "hello\n").unwrap();
        let c = Config::parse(&with("leaked_hashes = \"bad.txt\""), dir.path()).unwrap();
        let e = Settings::from_config(&c).unwrap_err().to_string();
        assert!(e.contains("not an NT hash"), "{e}");
    }
}
