//! The connection test (`phsync check`, `phs_check_connection`): every link a sync cycle
//! needs, one result per check in a fixed order, done the way the engine does it. A failed
//! check skips the checks that depend on it. Nothing is written to the directory or the
//! tenant, and no detail carries a password, hash, digest or token.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::{fips, SyncError};
use crate::config::{AuthMethod, Config};
use crate::settings::{ldap_host_port, Settings};
use phsync_directory::DirectoryUser;
use phsync_drsr::{DrsrClient, DrsrError};
use phsync_tenant::{self as cloud, CloudError, TenantTarget, TlsProbe};

/// The checks, in the order they are reported.
pub const CHECK_NAMES: [&str; 9] = [
    "config",
    "fips",
    "dc_reachable",
    "ldap_bind",
    "drsr_bind",
    "replication_rights",
    "tenant_reachable",
    "token_valid",
    "ca_trusted",
];

/// Each TCP connection attempt of `dc_reachable` and `tenant_reachable`, and the TLS probe.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// In-scope users whose password `replication_rights` tries to read before giving up.
const USERS_TRIED: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckResult {
    Passed,
    Failed,
    Skipped,
}

impl CheckResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckResult::Passed => "passed",
            CheckResult::Failed => "failed",
            CheckResult::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub result: CheckResult,
    /// Why, for a person: what was reached or read, what failed, or what was missing.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// No check failed (skipped ones do not count).
    pub ok: bool,
    /// One per [`CHECK_NAMES`] entry, in that order.
    pub checks: Vec<Check>,
}

impl CheckReport {
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// Results so far, by name; later checks ask for their prerequisites here.
#[derive(Default)]
struct Results(HashMap<&'static str, (CheckResult, String)>);

impl Results {
    fn set(&mut self, name: &'static str, result: CheckResult, detail: impl Into<String>) {
        debug_assert!(CHECK_NAMES.contains(&name));
        self.0.insert(name, (result, detail.into()));
    }

    fn pass(&mut self, name: &'static str, detail: impl Into<String>) {
        self.set(name, CheckResult::Passed, detail);
    }

    fn fail(&mut self, name: &'static str, detail: impl Into<String>) {
        self.set(name, CheckResult::Failed, detail);
    }

    fn skip(&mut self, name: &'static str, detail: impl Into<String>) {
        self.set(name, CheckResult::Skipped, detail);
    }

    /// Why `name` cannot run: the first prerequisite that failed (or was itself skipped for
    /// a failure), as the detail of a skip. `None` when all passed.
    fn blocked(&self, deps: &[&'static str]) -> Option<String> {
        deps.iter().find_map(|dep| match self.0.get(dep) {
            Some((CheckResult::Passed, _)) => None,
            Some((CheckResult::Failed, _)) => Some(format!("not run: {dep} failed")),
            Some((CheckResult::Skipped, why)) if why.starts_with("not run: ") => Some(why.clone()),
            Some((CheckResult::Skipped, _)) => Some(format!("not run: {dep} was skipped")),
            None => Some(format!("not run: {dep} did not run")),
        })
    }

    /// Skip `name` if a prerequisite is not met; true when it may run.
    fn may_run(&mut self, name: &'static str, deps: &[&'static str]) -> bool {
        match self.blocked(deps) {
            Some(why) => {
                self.skip(name, why);
                false
            }
            None => true,
        }
    }

    fn into_report(mut self) -> CheckReport {
        let checks: Vec<Check> = CHECK_NAMES
            .iter()
            .map(|&name| {
                let (result, detail) = self
                    .0
                    .remove(name)
                    .unwrap_or_else(|| (CheckResult::Skipped, "not run: no result (a bug)".into()));
                Check {
                    name,
                    result,
                    detail,
                }
            })
            .collect();
        CheckReport {
            ok: checks.iter().all(|c| c.result != CheckResult::Failed),
            checks,
        }
    }
}

/// Test every link the engine configured in `config_path` needs. Never fails: a problem is a
/// failed check. Blocks for at most a few timeouts (the DC's `timeout_seconds`, 5 s per TCP
/// connect).
pub fn check_connection(config_path: &Path) -> CheckReport {
    let mut r = Results::default();
    let Some(settings) = check_config(&mut r, config_path) else {
        for name in &CHECK_NAMES[1..] {
            r.skip(name, "not run: config failed");
        }
        return r.into_report();
    };
    check_fips(&mut r, &settings);
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => {
            rt.block_on(check_directory(&mut r, &settings));
            check_tenant(&mut r, &rt, &settings);
        }
        Err(e) => {
            for name in &CHECK_NAMES[2..] {
                r.fail(name, format!("cannot start the async runtime: {e}"));
            }
        }
    }
    r.into_report()
}

fn check_config(r: &mut Results, path: &Path) -> Option<Settings> {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            r.fail("config", e.to_string());
            return None;
        }
    };
    let checked = (|| -> Result<(String, Settings), SyncError> {
        let settings = Settings::from_config(&config)?;
        // Readable now, and not world-readable: dropped (zeroized) at once.
        drop(settings.password.read()?);
        let detail = format!(
            "{} is valid: DC {}, LDAP {}, bind account {}, tenant {}, state directory {}",
            path.display(),
            settings.replication.dc_host,
            settings.ldap.url,
            settings.ldap.bind_name,
            settings.tenant.display(),
            settings.state_dir.display()
        );
        Ok((detail, settings))
    })();
    match checked {
        Ok((detail, settings)) => {
            r.pass("config", detail);
            Some(settings)
        }
        Err(e) => {
            r.fail("config", e.to_string());
            None
        }
    }
}

fn check_fips(r: &mut Results, settings: &Settings) {
    if !fips::host_in_fips_mode() {
        r.pass("fips", "the host is not in FIPS mode");
    } else if settings.rules.allow_non_fips_crypto {
        r.pass(
            "fips",
            "the host is in FIPS mode; allow_non_fips_crypto = true lets phsync use MD4, MD5 and RC4 for replication",
        );
    } else {
        r.fail("fips", fips::FIPS_REFUSAL);
    }
}

/// One TCP connection, within [`CONNECT_TIMEOUT`] (name resolution included).
async fn tcp_connect(host: &str, port: u16, what: &str) -> Result<(), String> {
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    {
        Ok(Ok(_stream)) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot connect to {what} at {host}:{port}: {e}")),
        Err(_) => Err(format!(
            "no answer from {what} at {host}:{port} within {} s",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

async fn check_directory(r: &mut Results, settings: &Settings) {
    let repl = &settings.replication;

    // dc_reachable: the ports the engine will use, before any protocol.
    let ldap = match ldap_host_port(&settings.ldap.url) {
        Some((host, port)) => tcp_connect(&host, port, "LDAP")
            .await
            .map(|()| format!("LDAP at {host}:{port}")),
        None => Err("cannot take a host and port from the LDAP URL".to_string()),
    };
    let (port, what) = match repl.rpc_port {
        Some(port) => (port, "DRSUAPI (source.rpc_port)"),
        None => (135, "the RPC endpoint mapper"),
    };
    let rpc = tcp_connect(&repl.dc_host, port, what)
        .await
        .map(|()| format!("{what} at {}:{port}", repl.dc_host));
    let (ldap_reachable, rpc_reachable) = (ldap.is_ok(), rpc.is_ok());
    match (ldap, rpc) {
        (Ok(l), Ok(rpc)) => r.pass("dc_reachable", format!("connected to {l} and {rpc}")),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => r.fail("dc_reachable", e),
        (Err(l), Err(rpc)) => r.fail("dc_reachable", format!("{l}; {rpc}")),
    }
    // A check that needs only the port that answered still runs.
    let unreachable = "not run: dc_reachable failed";

    // ldap_bind: Directory::connect binds with the configured account, as a cycle's scope
    // stage does.
    let mut dir = None;
    if !ldap_reachable {
        r.skip("ldap_bind", unreachable);
    } else {
        match settings.connect_directory().await {
            Ok(d) => {
                let dc = &d.root_dse().dns_host_name;
                r.pass(
                    "ldap_bind",
                    format!(
                        "bound to {} as {}{}",
                        d.url(),
                        settings.ldap.bind_name,
                        if dc.is_empty() {
                            String::new()
                        } else {
                            format!(" (DC {dc})")
                        }
                    ),
                );
                dir = Some(d);
            }
            Err(e) => r.fail("ldap_bind", e.to_string()),
        }
    }

    // drsr_bind: the replication session a cycle opens. The same account as the LDAP bind,
    // so a refused bind there skips this rather than failing it twice.
    let mut client = None;
    if !rpc_reachable {
        r.skip("drsr_bind", unreachable);
    } else if r.may_run("drsr_bind", &["fips", "ldap_bind"]) {
        let connected = match settings.replication.drsr_config(&settings.password) {
            Ok(cfg) => DrsrClient::connect(&cfg)
                .await
                .map(|c| (c, cfg.dc_host.clone()))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match connected {
            Ok((c, host)) => {
                let auth = match repl.method {
                    AuthMethod::Ntlm => "NTLM",
                    AuthMethod::Kerberos => "Kerberos",
                };
                r.pass(
                    "drsr_bind",
                    format!(
                        "DCE/RPC bind ({auth}, packet privacy) and DRSBind with {host} as {}\\{}",
                        repl.account_domain, repl.account
                    ),
                );
                client = Some(c);
            }
            Err(e) => r.fail("drsr_bind", e),
        }
    }

    // replication_rights: one in-scope user's password, by the single-object replication
    // (EXOP_REPL_OBJ) the engine uses for new users and retries.
    if r.may_run("replication_rights", &["ldap_bind", "drsr_bind"]) {
        let (Some(d), Some(c)) = (dir.as_mut(), client.as_mut()) else {
            unreachable!("ldap_bind and drsr_bind passed");
        };
        match d.users(&settings.scope).await {
            Err(e) => r.fail(
                "replication_rights",
                format!("cannot list the users in scope to read one's password: {e}"),
            ),
            Ok(users) if users.is_empty() => r.skip(
                "replication_rights",
                "no user in scope (scope_ous / scope_groups select no enabled user), so no password to read",
            ),
            Ok(users) => {
                let (result, detail) = read_one_password(c, &users).await;
                r.set("replication_rights", result, detail);
            }
        }
    }
    if let Some(d) = dir {
        d.close().await;
    }
    if let Some(c) = client {
        let _ = c.close().await;
    }
}

/// Read the password of one of the first in-scope users; the hash is dropped unseen.
async fn read_one_password(
    client: &mut DrsrClient,
    users: &[DirectoryUser],
) -> (CheckResult, String) {
    let mut without_hash = Vec::new();
    for user in users.iter().take(USERS_TRIED) {
        let sam = &user.sam_account_name;
        match client.replicate_user(&user.object_guid.to_string()).await {
            Ok(account) if account.nt_hash.is_some() => {
                return (
                    CheckResult::Passed,
                    format!("read the password hash of {sam} by single-object replication (EXOP_REPL_OBJ), as the engine does"),
                )
            }
            Ok(_) => without_hash.push(sam.as_str()),
            Err(e @ DrsrError::MissingReplicationRights { .. }) => {
                return (
                    CheckResult::Failed,
                    format!("reading the password of {sam} was refused: {e}"),
                )
            }
            Err(e) => {
                return (
                    CheckResult::Failed,
                    format!("replicating {sam} failed: {e}"),
                )
            }
        }
    }
    (
        CheckResult::Failed,
        format!(
            "the DC sent no password hash for {}: the account probably lacks \"Replicating Directory Changes All\" on the domain root (or these users have no password)",
            without_hash.join(", ")
        ),
    )
}

fn check_tenant(r: &mut Results, rt: &tokio::runtime::Runtime, settings: &Settings) {
    let target = settings.tenant.clone();
    if target.is_remote() {
        check_service(r, rt, &target);
        return;
    }
    let what = if target.is_postgres() {
        "the tenant is a PostgreSQL database"
    } else {
        "the tenant is a file"
    };
    let not_a_service = format!("not a tenant service ({what})");
    r.skip("token_valid", not_a_service.clone());
    r.skip("ca_trusted", not_a_service);

    // A tenant file the first cycle will create: opening it here would create it.
    if !target.is_postgres() {
        let path = Path::new(&target.location);
        if !path.exists() {
            match path.parent().filter(|p| !p.as_os_str().is_empty()) {
                Some(dir) if !dir.is_dir() => r.fail(
                    "tenant_reachable",
                    format!(
                        "the tenant file {} cannot be created: directory {} does not exist",
                        path.display(),
                        dir.display()
                    ),
                ),
                _ => r.pass(
                    "tenant_reachable",
                    format!(
                        "the tenant file {} does not exist yet; the first cycle creates it",
                        path.display()
                    ),
                ),
            }
            return;
        }
    }
    match open_tenant(&target) {
        Ok(()) => r.pass(
            "tenant_reachable",
            format!(
                "opened the tenant {} and read its settings",
                target.display()
            ),
        ),
        Err(e) => r.fail("tenant_reachable", e.to_string()),
    }
}

/// Open the tenant as `Engine::open` does and read its settings (no write).
fn open_tenant(target: &TenantTarget) -> Result<(), CloudError> {
    let tenant = cloud::open_target(target, super::engine::TENANT_ACTOR)?;
    tenant.settings().map(drop)
}

fn check_service(r: &mut Results, rt: &tokio::runtime::Runtime, target: &TenantTarget) {
    let base = target.display();
    let https = target.location.to_ascii_lowercase().starts_with("https://");
    let reachable = match cloud::service_host_port(&target.location) {
        Ok((host, port)) => rt
            .block_on(tcp_connect(&host, port, "the tenant service"))
            .map(|()| format!("connected to the tenant service at {host}:{port}")),
        Err(e) => Err(e.to_string()),
    };
    match reachable {
        Ok(detail) => r.pass("tenant_reachable", detail),
        Err(e) => r.fail("tenant_reachable", e),
    }

    // ca_trusted is reported last but decided first: the token cannot be checked over a
    // connection that is not trusted.
    if !https {
        r.skip(
            "ca_trusted",
            "not an https:// tenant (plain http to a loopback address): no TLS",
        );
    } else if r.may_run("ca_trusted", &["tenant_reachable"]) {
        let (trusted, hint) = match &target.ca_file {
            Some(ca) => (format!("the CA file {}", ca.display()), "cloud.ca_file"),
            None => (
                "the public roots bundled with phsync".to_string(),
                "set cloud.ca_file to trust a private CA",
            ),
        };
        match cloud::probe_tls(target, CONNECT_TIMEOUT) {
            TlsProbe::Verified => r.pass(
                "ca_trusted",
                format!("the TLS certificate of {base} verified against {trusted}"),
            ),
            TlsProbe::CertificateRejected(why) => r.fail(
                "ca_trusted",
                format!("the TLS certificate of {base} is not trusted ({why}); trusted: {trusted} ({hint})"),
            ),
            TlsProbe::Failed(why) => r.fail("ca_trusted", why),
        }
    }

    let deps: &[&'static str] = if https {
        &["tenant_reachable", "ca_trusted"]
    } else {
        &["tenant_reachable"]
    };
    if r.may_run("token_valid", deps) {
        match open_tenant(target) {
            Ok(()) => r.pass(
                "token_valid",
                format!("{base} accepted the agent token (token and tenant settings read)"),
            ),
            Err(e @ (CloudError::Unauthorized(_) | CloudError::Forbidden(_))) => r.fail(
                "token_valid",
                format!("{base} refused the agent token (cloud.token_file): {e}"),
            ),
            Err(e) => r.fail("token_valid", e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldap_urls_give_host_and_port() {
        let hp = |u: &str| ldap_host_port(u);
        assert_eq!(hp("ldaps://dc1"), Some(("dc1".into(), 636)));
        assert_eq!(hp("ldap://dc1/"), Some(("dc1".into(), 389)));
        assert_eq!(hp("LDAPS://10.0.0.1:3269"), Some(("10.0.0.1".into(), 3269)));
        assert_eq!(hp("ldaps://[::1]"), Some(("::1".into(), 636)));
        assert_eq!(hp("ldap://[::1]:1389"), Some(("::1".into(), 1389)));
        assert_eq!(hp("ldaps://"), None);
        assert_eq!(hp("ldaps://dc:x"), None);
    }

    #[test]
    fn a_failure_skips_its_dependents_naming_it() {
        let mut r = Results::default();
        r.pass("dc_reachable", "ok");
        r.fail("ldap_bind", "bad password");
        assert!(!r.may_run("drsr_bind", &["dc_reachable", "ldap_bind"]));
        assert!(!r.may_run("replication_rights", &["ldap_bind", "drsr_bind"]));
        assert_eq!(r.0["drsr_bind"].1, "not run: ldap_bind failed");
        assert_eq!(r.0["replication_rights"].1, "not run: ldap_bind failed");
        let report = r.into_report();
        assert!(!report.ok);
        assert_eq!(report.checks.len(), CHECK_NAMES.len());
        assert_eq!(
            report.checks.iter().map(|c| c.name).collect::<Vec<_>>(),
            CHECK_NAMES
        );
    }

    #[test]
    fn a_missing_config_fails_config_and_skips_the_rest() {
        let report = check_connection(Path::new("/nonexistent/phsync-check.toml"));
        assert!(!report.ok);
        assert_eq!(report.checks[0].result, CheckResult::Failed);
        assert!(report.checks[0]
            .detail
            .contains("/nonexistent/phsync-check.toml"));
        assert!(report.checks[1..]
            .iter()
            .all(|c| c.result == CheckResult::Skipped && c.detail == "not run: config failed"));
    }
}
