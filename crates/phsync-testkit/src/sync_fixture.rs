//! A sync engine wired to the lab: its own OU (scope), tenant file and state directory.
#![allow(dead_code)]

use std::path::PathBuf;

use phsync_engine::{CycleReport, Engine};
use phsync_tenant::{self as cloud, CloudTenant, SignInStatus};

use super::ad::TestOu;
use super::tenant::TempDir;

pub struct SyncFixture {
    pub ou: TestOu,
    pub dir: TempDir,
    pub config: PathBuf,
    pub tenant_path: String,
}

impl SyncFixture {
    /// `extra_sync` is appended to the `[sync]` section (e.g. `sync_temporary_passwords = true`).
    pub fn new(tag: &str, extra_sync: &str) -> SyncFixture {
        let ou = TestOu::new(tag);
        let dir = TempDir::new(&format!("sync-{tag}"));
        let replicator = ou.lab.account("phs-replicator");
        let pw = dir.0.join("replicator.pw");
        std::fs::write(&pw, &replicator.password).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let tenant_path = dir.0.join("tenant.db").display().to_string();
        let fixture = SyncFixture {
            config: dir.0.join("phsync.toml"),
            ou,
            dir,
            tenant_path,
        };
        fixture.write_config(extra_sync);
        fixture
    }

    pub fn write_config(&self, extra_sync: &str) {
        self.write_config_to(&self.config, extra_sync, "tenant = \"tenant.db\"", "state");
    }

    /// A config at `path` with its own `[cloud]` body and state directory (several agents
    /// over one OU).
    pub fn write_config_to(
        &self,
        path: &std::path::Path,
        extra_sync: &str,
        cloud: &str,
        state: &str,
    ) {
        let lab = &self.ou.lab;
        let text = format!(
            r#"[source]
domain_controller = "127.0.0.1"
ldap_url = "{ldaps}"
ca_file = "{ca}"
realm = "{realm}"
netbios_domain = "{domain}"
username = "phs-replicator"
password_file = "replicator.pw"

[sync]
scope_ous = ["{ou}"]
{extra_sync}

[cloud]
{cloud}

[state]
dir = "{state}"
"#,
            ldaps = lab.ldaps_url,
            ca = lab.ca_file.display(),
            realm = lab.realm,
            domain = lab.domain,
            ou = self.ou.dn,
        );
        std::fs::write(path, text).unwrap();
    }

    pub fn engine(&self) -> Engine {
        Engine::open(&self.config).unwrap_or_else(|e| panic!("engine: {e}"))
    }

    pub fn cycle(&self, full: bool) -> CycleReport {
        self.engine()
            .cycle(full, &mut |_, _, _| {})
            .unwrap_or_else(|e| panic!("cycle: {e}"))
    }

    pub fn tenant(&self) -> Box<dyn CloudTenant> {
        cloud::open(&self.tenant_path, "test").unwrap()
    }

    pub fn sign_in(&self, sam: &str, password: &str) -> SignInStatus {
        let pw: Vec<u16> = password.encode_utf16().collect();
        self.tenant()
            .sign_in(&self.ou.upn(sam), &pw)
            .unwrap()
            .result
    }

    /// A sAMAccountName unique to this fixture (`name` at most 15 characters).
    pub fn sam(&self, name: &str) -> String {
        format!("{name}{}", self.ou.suffix)
    }
}
