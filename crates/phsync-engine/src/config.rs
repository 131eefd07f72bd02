//! The phsync configuration file (TOML): one file for the whole engine.
//!
//! Sections: `[source]` (the domain controller and the bind account) and `[sync]` (which users
//! are in scope). Unknown sections and unknown keys are errors naming the key, so a typo never
//! silently falls back to a default. Relative paths are relative to the config file's directory.
//!
//! The bind password is never stored in the file: `password_file` (read at use time; refused if
//! it is world-readable, like ssh refuses a world-readable key) or `password_env` (the name
//! of an environment variable), exactly one of the two. A world-readable password file is an
//! error (group-readable is allowed, for a service group).

use std::path::{Path, PathBuf};

use phsync_directory::{LdapTarget, Transport, UserScope};
use serde::Deserialize;
use zeroize::Zeroizing;

/// Default connect and per-operation timeout.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 15;

/// Errors loading or using the configuration. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// TOML syntax or schema error; the message names the offending key (`unknown field `x``).
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A semantically invalid setting (both password sources, plain LDAP not allowed, ...).
    #[error("invalid config: {0}")]
    Invalid(String),
    #[error("cannot read password file {path}: {source}")]
    PasswordFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("password file {path} is world-readable (mode {mode:o}); chmod 600 it")]
    PasswordFileMode { path: PathBuf, mode: u32 },
    #[error("environment variable {name} (source.password_env) is not set or not UTF-8")]
    PasswordEnv { name: String },
    #[error("the bind password from {origin} is empty")]
    EmptyPassword { origin: String },
    /// `[audit] leaked_hashes`: missing, unreadable or not a sorted list of NT hashes.
    #[error("audit.leaked_hashes: {0}")]
    LeakedHashes(String),
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub source: SourceConfig,
    #[serde(default)]
    pub sync: SyncConfig,
    /// Where digests go; required by the sync engine, not by `phsync directory`.
    #[serde(default)]
    pub cloud: Option<CloudConfig>,
    /// Where the engine keeps its cursor, retry queue, diagnostics and event log.
    #[serde(default)]
    pub state: Option<StateConfig>,
    /// Password-quality checks the sync does on the hashes it reads.
    #[serde(default)]
    pub audit: AuditConfig,
}

/// `[audit]`: leaked credentials checked by every sync (issue 18).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Have I Been Pwned's "NTLM ordered by hash" file (`HASH:COUNT` lines) or a plain
    /// sorted list of NT hashes; each synced user whose hash is in it is marked
    /// `leaked_credentials` in the tenant.
    #[serde(default)]
    pub leaked_hashes: Option<PathBuf>,
    /// A user marked leaked must change the password at next sign-in.
    #[serde(default)]
    pub block_leaked_sign_in: bool,
}

/// `[cloud]`: the tenant that receives the digests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    /// A tenant file path (relative to the config file's directory), a `postgres://` URL,
    /// or the `https://` URL of `phsync cloud serve`.
    pub tenant: String,
    /// Remote tenants: the file holding this agent's API token (mode 0600).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Remote tenants: PEM CA certificate(s) to trust for the service instead of the
    /// public roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// `[state]`: the engine's state directory (created 0700).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    pub dir: PathBuf,
}

/// How the replication client authenticates to the DC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    #[default]
    Ntlm,
    Kerberos,
}

/// `[source]`: the domain controller and how to bind to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Host name or IP of the DC; used to build `ldaps://HOST` when `ldap_url` is absent.
    #[serde(default)]
    pub domain_controller: Option<String>,
    /// `ldaps://host[:port]` or `ldap://host[:port]` (StartTLS, or plain if allowed).
    #[serde(default)]
    pub ldap_url: Option<String>,
    /// PEM file with the CA certificate(s) that issued the DC's certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Kerberos realm / DNS domain, e.g. `PHS.TEST`.
    pub realm: String,
    /// NetBIOS domain name, e.g. `PHS`.
    pub netbios_domain: String,
    /// Bind account: a UPN, a DN, `DOMAIN\sam`, or a bare sAMAccountName (bound as `sam@realm`).
    pub username: String,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub password_env: Option<String>,
    /// With an `ldap://` URL: upgrade with StartTLS (default true).
    #[serde(default = "default_true")]
    pub starttls: bool,
    /// Permit an unencrypted `ldap://` connection (with `starttls = false`). Default false.
    #[serde(default)]
    pub allow_plain_ldap: bool,
    /// Connect and per-operation timeout in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Replication (MS-DRSR) authentication: `ntlm` (default) or `kerberos`.
    #[serde(default)]
    pub auth: AuthMethod,
    /// Kerberos KDC `host:port`; default: the domain controller, port 88.
    #[serde(default)]
    pub kdc: Option<String>,
    /// Kerberos service principal of the DC; default `host/<domain_controller>`. Set it
    /// (e.g. `host/dc1.example.com`) when `domain_controller` is an address.
    #[serde(default)]
    pub spn: Option<String>,
    /// DRSUAPI TCP port, skipping the endpoint mapper (TCP 135). Default: ask the mapper.
    #[serde(default)]
    pub rpc_port: Option<u16>,
}

/// `[sync]`: which users are in scope.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Include disabled accounts (userAccountControl bit 2). Default false.
    #[serde(default)]
    pub include_disabled: bool,
    /// Base DNs searched (subtree). Empty: the whole domain.
    #[serde(default)]
    pub scope_ous: Vec<String>,
    /// Groups (DN or sAMAccountName); members, nested included, are in scope. Empty: no filter.
    /// With both OUs and groups, a user must be in one of the OUs AND in one of the groups.
    #[serde(default)]
    pub scope_groups: Vec<String>,
    /// Seconds between cycles in `phsync run` (Microsoft: 120).
    #[serde(default = "default_interval")]
    pub interval_seconds: u64,
    /// Microsoft's ForcePasswordChangeOnLogOn: sync "must change at next logon" passwords
    /// with a force-change flag instead of filtering them. Default false.
    #[serde(default)]
    pub sync_temporary_passwords: bool,
    /// Microsoft's CloudPasswordPolicyForPasswordSyncedUsersEnabled, set on the tenant.
    #[serde(default)]
    pub apply_cloud_password_policy: bool,
    /// Allow MD4/MD5/RC4 on a FIPS-mode host (Entra Connect's enforceFIPSPolicy="false").
    #[serde(default)]
    pub allow_non_fips_crypto: bool,
    /// Objects per GetNCChanges batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// `phsync run` keeps an LDAP change-notification search open and syncs a changed user
    /// within seconds, the periodic cycle staying as the safety net. Default true; false:
    /// poll only.
    #[serde(default = "default_true")]
    pub notifications: bool,
    /// Where `phsync run` learns of changes between cycles (with `notifications = true`):
    /// `auto` (default: change notifications, DirSync polled every 2 s where the DC refuses
    /// them), `notifications` (no fallback: poll only), or `dirsync`.
    #[serde(default)]
    pub change_source: ChangeSource,
}

/// `[sync] change_source`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeSource {
    #[default]
    Auto,
    Notifications,
    DirSync,
}

impl SyncConfig {
    /// The user scope these settings describe.
    pub fn scope(&self) -> UserScope {
        UserScope {
            include_disabled: self.include_disabled,
            ous: self.scope_ous.clone(),
            groups: self.scope_groups.clone(),
        }
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            include_disabled: false,
            scope_ous: Vec::new(),
            scope_groups: Vec::new(),
            interval_seconds: default_interval(),
            sync_temporary_passwords: false,
            apply_cloud_password_policy: false,
            allow_non_fips_crypto: false,
            batch_size: default_batch_size(),
            notifications: true,
            change_source: ChangeSource::Auto,
        }
    }
}

fn default_interval() -> u64 {
    120
}

fn default_batch_size() -> u32 {
    phsync_drsr::DEFAULT_BATCH_SIZE
}

fn default_true() -> bool {
    true
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_SECONDS
}

impl Config {
    /// Read, parse and validate a config file; relative paths become relative to its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let base = if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        };
        Config::parse(&text, base).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parse and validate config text; relative paths are resolved against `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<string>"),
            message: one_line(&e.to_string()),
        })?;
        config.source.resolve_paths(base_dir);
        if let Some(cloud) = &mut config.cloud {
            if !cloud.tenant.contains("://") && Path::new(&cloud.tenant).is_relative() {
                cloud.tenant = base_dir.join(&cloud.tenant).display().to_string();
            }
            for p in [&mut cloud.token_file, &mut cloud.ca_file]
                .into_iter()
                .flatten()
            {
                if p.is_relative() {
                    *p = base_dir.join(&*p);
                }
            }
        }
        if let Some(p) = &mut config.audit.leaked_hashes {
            if p.is_relative() {
                *p = base_dir.join(&*p);
            }
        }
        if let Some(state) = &mut config.state {
            if state.dir.is_relative() {
                state.dir = base_dir.join(&state.dir);
            }
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.source.validate()?;
        if !(1..=86_400).contains(&self.sync.interval_seconds) {
            return Err(ConfigError::Invalid(
                "sync.interval_seconds must be 1..=86400".into(),
            ));
        }
        if !(1..=10_000).contains(&self.sync.batch_size) {
            return Err(ConfigError::Invalid(
                "sync.batch_size must be 1..=10000".into(),
            ));
        }
        for ou in &self.sync.scope_ous {
            if !ou.contains('=') {
                return Err(ConfigError::Invalid(format!(
                    "sync.scope_ous entry {ou:?} is not a DN (e.g. OU=Sales,DC=example,DC=com)"
                )));
            }
        }
        for g in &self.sync.scope_groups {
            if g.trim().is_empty() {
                return Err(ConfigError::Invalid(
                    "sync.scope_groups has an empty entry".into(),
                ));
            }
        }
        if self.audit.block_leaked_sign_in && self.audit.leaked_hashes.is_none() {
            return Err(ConfigError::Invalid(
                "audit.block_leaked_sign_in needs audit.leaked_hashes (the leaked-hash list)"
                    .into(),
            ));
        }
        if let Some(cloud) = &self.cloud {
            let t = cloud.tenant.to_ascii_lowercase();
            let remote = t.starts_with("https://") || t.starts_with("http://");
            if remote && cloud.token_file.is_none() {
                return Err(ConfigError::Invalid(
                    "cloud.tenant is a service URL: cloud.token_file (the agent's API token) is required".into(),
                ));
            }
            if !remote && (cloud.token_file.is_some() || cloud.ca_file.is_some()) {
                return Err(ConfigError::Invalid(
                    "cloud.token_file and cloud.ca_file apply only to an https:// tenant".into(),
                ));
            }
        }
        Ok(())
    }
}

/// toml's messages span several lines (a source excerpt); keep the first line and the key.
fn one_line(message: &str) -> String {
    let mut lines = message.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("").to_string();
    // The explanation ("unknown field `x`, expected ...") is the last line.
    match message.lines().map(str::trim).rfind(|l| !l.is_empty()) {
        Some(last) if last != first => format!("{first}: {last}"),
        _ => first,
    }
}

impl SourceConfig {
    fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.ca_file, &mut self.password_file]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match (&self.password_file, &self.password_env) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid(
                    "source.password_file and source.password_env are both set; set exactly one"
                        .into(),
                ))
            }
            (None, None) => {
                return Err(ConfigError::Invalid(
                    "no bind password source: set source.password_file or source.password_env"
                        .into(),
                ))
            }
            _ => {}
        }
        if self.username.trim().is_empty() {
            return Err(ConfigError::Invalid("source.username is empty".into()));
        }
        if self.realm.trim().is_empty() || self.netbios_domain.trim().is_empty() {
            return Err(ConfigError::Invalid(
                "source.realm and source.netbios_domain must not be empty".into(),
            ));
        }
        if self.timeout_seconds == 0 {
            return Err(ConfigError::Invalid(
                "source.timeout_seconds must be at least 1".into(),
            ));
        }
        self.ldap_target()?;
        Ok(())
    }

    /// The LDAP URL: `ldap_url`, or `ldaps://domain_controller`.
    pub fn url(&self) -> Result<String, ConfigError> {
        let url = match (&self.ldap_url, &self.domain_controller) {
            (Some(u), _) => u.trim().to_string(),
            (None, Some(dc)) => format!("ldaps://{}", dc.trim()),
            (None, None) => {
                return Err(ConfigError::Invalid(
                    "set source.ldap_url or source.domain_controller".into(),
                ))
            }
        };
        let lower = url.to_ascii_lowercase();
        if !(lower.starts_with("ldaps://") || lower.starts_with("ldap://")) {
            return Err(ConfigError::Invalid(format!(
                "source.ldap_url {url:?} must start with ldaps:// or ldap://"
            )));
        }
        Ok(url)
    }

    /// The LDAP target these settings describe: URL, transport with its CA, timeout and the
    /// bind name. Refuses plain LDAP unless allowed and TLS without a CA file.
    pub fn ldap_target(&self) -> Result<LdapTarget, ConfigError> {
        let url = self.url()?;
        let tls = url.to_ascii_lowercase().starts_with("ldaps://") || self.starttls;
        let transport = if !tls {
            if !self.allow_plain_ldap {
                return Err(ConfigError::Invalid(format!(
                    "{url} with starttls = false is unencrypted LDAP; use ldaps:// or StartTLS, \
                     or set source.allow_plain_ldap = true"
                )));
            }
            Transport::Plain
        } else {
            let ca_file = self.ca_file.clone().ok_or_else(|| {
                ConfigError::Invalid(
                    "source.ca_file is required to verify the DC's TLS certificate".into(),
                )
            })?;
            if url.to_ascii_lowercase().starts_with("ldaps://") {
                Transport::Ldaps { ca_file }
            } else {
                Transport::StartTls { ca_file }
            }
        };
        Ok(LdapTarget {
            url,
            transport,
            timeout: std::time::Duration::from_secs(self.timeout_seconds),
            bind_name: self.bind_name(),
            realm: self.realm.trim().to_string(),
            netbios_domain: self.netbios_domain.trim().to_string(),
        })
    }

    /// Read the bind password and connect to the DC over LDAP: the one way the engine, the
    /// connection check and the CLI connect. The password is dropped (zeroized) after the bind.
    pub async fn connect_directory(&self) -> Result<phsync_directory::Directory, crate::SyncError> {
        crate::settings::connect_directory(&self.ldap_target()?, &self.password_source()?).await
    }

    /// The username as sent in the simple bind: a bare sAMAccountName becomes `sam@realm`.
    pub fn bind_name(&self) -> String {
        let u = self.username.trim();
        if u.contains('@') || u.contains('\\') || u.contains('=') {
            u.to_string()
        } else {
            format!("{u}@{}", self.realm.to_ascii_lowercase())
        }
    }

    /// Where the bind password comes from (validated: exactly one source).
    pub fn password_source(&self) -> Result<crate::settings::PasswordSource, ConfigError> {
        use crate::settings::PasswordSource;
        match (&self.password_file, &self.password_env) {
            (Some(f), None) => Ok(PasswordSource::File(f.clone())),
            (None, Some(e)) => Ok(PasswordSource::Env(e.clone())),
            (Some(_), Some(_)) => Err(ConfigError::Invalid(
                "source.password_file and source.password_env are both set; set exactly one".into(),
            )),
            (None, None) => Err(ConfigError::Invalid(
                "no bind password source: set source.password_file or source.password_env".into(),
            )),
        }
    }

    /// Read the bind password now (from the file or the environment). Never cached.
    pub fn password(&self) -> Result<Zeroizing<String>, ConfigError> {
        self.password_source()?.read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[source]
ldap_url = "ldaps://127.0.0.1"
ca_file = "tls/ca.pem"
realm = "PHS.TEST"
netbios_domain = "PHS"
username = "phs-replicator"
password_file = "secret/pw"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/phsync"))
    }

    #[test]
    fn minimal_config_and_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.source.url().unwrap(), "ldaps://127.0.0.1");
        assert!(matches!(
            c.source.ldap_target().unwrap().transport,
            Transport::Ldaps { .. }
        ));
        assert!(!c.source.allow_plain_ldap);
        assert!(!c.sync.include_disabled);
        assert!(c.sync.scope_ous.is_empty() && c.sync.scope_groups.is_empty());
        assert_eq!(c.source.timeout_seconds, DEFAULT_TIMEOUT_SECONDS);
        assert_eq!(c.source.bind_name(), "phs-replicator@phs.test");
    }

    #[test]
    fn relative_paths_are_relative_to_the_config_dir() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(
            c.source.ca_file.unwrap(),
            Path::new("/etc/phsync/tls/ca.pem")
        );
        assert_eq!(
            c.source.password_file.unwrap(),
            Path::new("/etc/phsync/secret/pw")
        );
        let abs = MINIMAL
            .replace("\"tls/ca.pem\"", "\"/opt/ca.pem\"")
            .replace("\"secret/pw\"", "\"/run/pw\"");
        let c = parse(&abs).unwrap();
        assert_eq!(c.source.ca_file.unwrap(), Path::new("/opt/ca.pem"));
        assert_eq!(c.source.password_file.unwrap(), Path::new("/run/pw"));
    }

    #[test]
    fn load_resolves_against_the_file_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("phsync.toml");
        std::fs::write(&path, MINIMAL).unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.source.ca_file.unwrap(), dir.path().join("tls/ca.pem"));
    }

    #[test]
    fn unknown_key_is_named() {
        let text = MINIMAL.replace("realm =", "relam_typo = \"x\"\nrealm =");
        let msg = parse(&text).unwrap_err().to_string();
        assert!(msg.contains("relam_typo"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        let text = format!("{MINIMAL}\n[sync]\ninclude_disabledd = true\n");
        let msg = parse(&text).unwrap_err().to_string();
        assert!(msg.contains("include_disabledd"), "{msg}");
        let text = format!("{MINIMAL}\n[cloudd]\nx = 1\n");
        let msg = parse(&text).unwrap_err().to_string();
        assert!(msg.contains("cloudd"), "{msg}");
    }

    #[test]
    fn exactly_one_password_source() {
        let both = MINIMAL.replace(
            "password_file = \"secret/pw\"",
            "password_file = \"secret/pw\"\npassword_env = \"PW\"",
        );
        let msg = parse(&both).unwrap_err().to_string();
        assert!(msg.contains("both"), "{msg}");
        let neither = MINIMAL.replace("password_file = \"secret/pw\"", "");
        let msg = parse(&neither).unwrap_err().to_string();
        assert!(msg.contains("no bind password source"), "{msg}");
    }

    #[test]
    fn plain_ldap_needs_the_flag() {
        let plain = MINIMAL.replace("ldaps://127.0.0.1", "ldap://127.0.0.1") + "";
        // ldap:// defaults to StartTLS.
        let c = parse(&plain).unwrap();
        assert!(matches!(
            c.source.ldap_target().unwrap().transport,
            Transport::StartTls { .. }
        ));
        let no_tls = plain.replace("realm =", "starttls = false\nrealm =");
        let msg = parse(&no_tls).unwrap_err().to_string();
        assert!(msg.contains("allow_plain_ldap"), "{msg}");
        let allowed = no_tls.replace("realm =", "allow_plain_ldap = true\nrealm =");
        let c = parse(&allowed).unwrap();
        assert_eq!(c.source.ldap_target().unwrap().transport, Transport::Plain);
        let bad_scheme = MINIMAL.replace("ldaps://127.0.0.1", "https://127.0.0.1");
        assert!(parse(&bad_scheme).is_err());
    }

    #[test]
    fn domain_controller_builds_an_ldaps_url() {
        let text = MINIMAL.replace(
            "ldap_url = \"ldaps://127.0.0.1\"",
            "domain_controller = \"dc1.phs.test\"",
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.source.url().unwrap(), "ldaps://dc1.phs.test");
    }

    #[test]
    fn password_file_rules() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret-Value\n").unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = MINIMAL.replace("secret/pw", pw.to_str().unwrap());
        let c = parse(&text).unwrap();
        assert_eq!(c.source.password().unwrap().as_str(), "s3cret-Value");
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = c.source.password().unwrap_err().to_string();
        assert!(err.contains("world-readable"), "{err}");
        // Group-readable is the operator's call (e.g. a service group); only "others" is refused.
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(c.source.password().unwrap().as_str(), "s3cret-Value");
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o604)).unwrap();
        assert!(c.source.password().is_err());
        assert!(!err.contains("s3cret"), "{err}");
        // Debug output of the config holds no secret: it never holds the password at all.
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let _pw = c.source.password().unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn password_env() {
        let text = MINIMAL.replace(
            "password_file = \"secret/pw\"",
            "password_env = \"PHSYNC_TEST_CONFIG_PW_7f3a\"",
        );
        let c = parse(&text).unwrap();
        let err = c.source.password().unwrap_err().to_string();
        assert!(err.contains("PHSYNC_TEST_CONFIG_PW_7f3a"), "{err}");
        std::env::set_var("PHSYNC_TEST_CONFIG_PW_7f3a", "from-env");
        assert_eq!(c.source.password().unwrap().as_str(), "from-env");
    }

    #[test]
    fn scope_settings() {
        let text = format!(
            "{MINIMAL}\n[sync]\ninclude_disabled = true\nscope_ous = [\"OU=Sales,DC=phs,DC=test\"]\nscope_groups = [\"PHS-Sync-Users\"]\n"
        );
        let c = parse(&text).unwrap();
        assert!(c.sync.include_disabled);
        assert_eq!(c.sync.scope_ous, ["OU=Sales,DC=phs,DC=test"]);
        assert_eq!(c.sync.scope_groups, ["PHS-Sync-Users"]);
        let bad = format!("{MINIMAL}\n[sync]\nscope_ous = [\"Sales\"]\n");
        assert!(parse(&bad).unwrap_err().to_string().contains("not a DN"));
    }
}
