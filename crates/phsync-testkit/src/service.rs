//! A real `phsync cloud serve` for tests: a self-made CA, a server certificate for
//! 127.0.0.1, a PostgreSQL database of its own, tokens, and service processes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use phsync_service::tokens;
use phsync_tenant::{self as cloud, CloudTenant, TenantTarget, TokenRole};

use super::tenant::{TempDir, TestDatabase};

/// A CA and a server certificate (127.0.0.1, localhost) signed by it, as PEM files.
pub struct TestPki {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// A CA the service's certificate does not chain to.
    pub other_ca_file: PathBuf,
}

fn ca(name: &str) -> (rcgen::CertificateParams, rcgen::KeyPair, String) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    (params, key, pem)
}

impl TestPki {
    pub fn new(dir: &std::path::Path) -> Self {
        let (ca_params, ca_key, ca_pem) = ca("phsync test CA");
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "phsync tenant service");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let (_, _, other_pem) = ca("some other CA");
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        TestPki {
            ca_file: write("ca.pem", &ca_pem),
            cert_file: write("server.pem", &cert.pem()),
            // A private key must be private: the service refuses one every user can read.
            key_file: {
                let p = dir.join("server.key");
                phsync_tenant::private_file::write_private(&p, key.serialize_pem().as_bytes())
                    .unwrap();
                p
            },
            other_ca_file: write("other-ca.pem", &other_pem),
        }
    }
}

/// A PostgreSQL-backed tenant with its PKI and tokens, ready for service processes.
pub struct ServiceLab {
    pub dir: TempDir,
    pub db: TestDatabase,
    pub pki: TestPki,
    pub config: PathBuf,
    pub admin_token: PathBuf,
}

impl ServiceLab {
    pub fn new(tag: &str) -> Self {
        Self::with_settings(tag, "")
    }

    /// `extra`: more `[service]` lines (limits, throttles).
    pub fn with_settings(tag: &str, extra: &str) -> Self {
        let dir = TempDir::new(tag);
        let db = TestDatabase::new(tag);
        let pki = TestPki::new(&dir.0);
        let config = dir.0.join("service.toml");
        std::fs::write(
            &config,
            format!(
                "[service]\nlisten = \"127.0.0.1:0\"\nstore = \"{}\"\ntls_cert = \"server.pem\"\ntls_key = \"server.key\"\n{extra}\n",
                db.url
            ),
        )
        .unwrap();
        let lab = ServiceLab {
            admin_token: dir.0.join("admin.token"),
            dir,
            db,
            pki,
            config,
        };
        lab.token(TokenRole::Admin, "test-admin", None, "admin.token");
        lab
    }

    /// Issue a token into a 0600 file in the lab directory.
    pub fn token(&self, role: TokenRole, name: &str, source: Option<&str>, file: &str) -> PathBuf {
        let store = cloud::open_store(&self.db.url).unwrap();
        let (_, token) = tokens::issue(store.as_ref(), role, name, source).unwrap();
        let path = self.dir.0.join(file);
        phsync_tenant::private_file::write_private(&path, token.as_bytes()).unwrap();
        path
    }

    pub fn serve(&self) -> ServiceProcess {
        ServiceProcess::start(&self.config, &[])
    }

    /// [`serve`](Self::serve) with more `phsync cloud serve` arguments (e.g. a log level).
    pub fn serve_with(&self, extra_args: &[&str]) -> ServiceProcess {
        ServiceProcess::start(&self.config, extra_args)
    }

    /// A client of `service` with the given token file.
    pub fn client(
        &self,
        service: &ServiceProcess,
        token_file: &std::path::Path,
    ) -> Box<dyn CloudTenant> {
        cloud::open_target(
            &TenantTarget {
                location: service.url.clone(),
                token_file: Some(token_file.to_path_buf()),
                ca_file: Some(self.pki.ca_file.clone()),
            },
            "test",
        )
        .unwrap()
    }

    pub fn admin(&self, service: &ServiceProcess) -> Box<dyn CloudTenant> {
        self.client(service, &self.admin_token)
    }
}

/// `phsync cloud serve` as a child process; killed when dropped.
pub struct ServiceProcess {
    child: Child,
    pub url: String,
}

impl ServiceProcess {
    pub fn start(config: &std::path::Path, extra_args: &[&str]) -> Self {
        Self::spawn(config, extra_args, Stdio::inherit())
    }

    /// Like [`start`](Self::start), with the service's log (stderr) going to `log`.
    pub fn start_logged(
        config: &std::path::Path,
        extra_args: &[&str],
        log: &std::path::Path,
    ) -> Self {
        Self::spawn(
            config,
            extra_args,
            Stdio::from(std::fs::File::create(log).unwrap()),
        )
    }

    fn spawn(config: &std::path::Path, extra_args: &[&str], stderr: Stdio) -> Self {
        let mut child = Command::new(crate::phsync_bin())
            .args(["cloud", "serve", "--config"])
            .arg(config)
            .args(extra_args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("phsync cloud serve did not start: {line:?}"))
            .to_string();
        ServiceProcess { child, url }
    }

    /// SIGTERM and wait: the service finishes requests in flight and exits 0.
    pub fn stop(mut self) -> std::process::ExitStatus {
        send_signal(self.child.id(), 15);
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

fn send_signal(pid: u32, signal: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
