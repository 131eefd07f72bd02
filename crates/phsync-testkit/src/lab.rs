//! The AD lab (scripts/ad-lab/lab.sh) as the integration tests see it: the values of
//! `$PHSYNC_LAB_DIR/lab.env` (default /var/tmp/phsync-ad-lab) and the seeded accounts of
//! `seed.tsv`. A missing lab is a test failure with instructions, never a silent pass.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

/// The parsed `lab.env`.
#[derive(Debug, Clone)]
pub struct Lab {
    pub vars: HashMap<String, String>,
    pub dir: PathBuf,
    pub realm: String,
    pub domain: String,
    pub dns_domain: String,
    pub base_dn: String,
    pub ldaps_url: String,
    pub ldap_url: String,
    pub ca_file: PathBuf,
    pub admin_user: String,
    pub admin_upn: String,
    pub admin_dn: String,
    pub admin_password_file: PathBuf,
    pub seed_file: PathBuf,
}

/// One line of `seed.tsv`.
#[derive(Debug, Clone)]
pub struct SeedAccount {
    pub sam: String,
    pub password: String,
    pub upn: Option<String>,
    pub container: String,
    pub flags: Vec<String>,
}

impl SeedAccount {
    pub fn has_flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }
}

/// Parse seed.tsv: a header line starting with `#`, then tab-separated rows
/// (sam, password, upn or empty, container DN, comma-separated flags).
pub fn parse_seed(text: &str) -> Vec<SeedAccount> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert!(f.len() >= 5, "bad seed.tsv line {l:?}");
            SeedAccount {
                sam: f[0].to_string(),
                password: f[1].to_string(),
                upn: (!f[2].is_empty()).then(|| f[2].to_string()),
                container: f[3].to_string(),
                flags: f[4].split(',').map(str::to_string).collect(),
            }
        })
        .collect()
}

fn lab_dir() -> PathBuf {
    std::env::var_os("PHSYNC_LAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/phsync-ad-lab"))
}

/// Parse `KEY=VALUE` lines; values may be single- or double-quoted.
pub fn parse_env(text: &str) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            let v = if v.len() >= 2
                && ((v.starts_with('\'') && v.ends_with('\''))
                    || (v.starts_with('"') && v.ends_with('"')))
            {
                &v[1..v.len() - 1]
            } else {
                v
            };
            vars.insert(k.trim().to_string(), v.to_string());
        }
    }
    vars
}

impl Lab {
    /// Load lab.env, panicking with instructions if the lab was never brought up.
    pub fn load() -> Lab {
        let path = lab_dir().join("lab.env");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "AD lab not available: cannot read {} ({e}). Run `scripts/ad-lab/lab.sh up` as \
                 root (scripts/test does this) before these tests.",
                path.display()
            )
        });
        let vars = parse_env(&text);
        let get = |k: &str| -> String {
            vars.get(k)
                .cloned()
                .unwrap_or_else(|| panic!("{} has no {k}", path.display()))
        };
        Lab {
            dir: get("PHSYNC_LAB_DIR").into(),
            realm: get("PHSYNC_LAB_REALM"),
            domain: get("PHSYNC_LAB_DOMAIN"),
            dns_domain: get("PHSYNC_LAB_DNS_DOMAIN"),
            base_dn: get("PHSYNC_LAB_BASE_DN"),
            ldaps_url: get("PHSYNC_LAB_LDAPS_URL"),
            ldap_url: get("PHSYNC_LAB_LDAP_URL"),
            ca_file: get("PHSYNC_LAB_CA_FILE").into(),
            admin_user: get("PHSYNC_LAB_ADMIN_USER"),
            admin_upn: get("PHSYNC_LAB_ADMIN_UPN"),
            admin_dn: get("PHSYNC_LAB_ADMIN_DN"),
            admin_password_file: get("PHSYNC_LAB_ADMIN_PASSWORD_FILE").into(),
            seed_file: get("PHSYNC_LAB_SEED_FILE").into(),
            vars,
        }
    }

    /// The seeded accounts (seed.tsv).
    pub fn seed(&self) -> Vec<SeedAccount> {
        let text = std::fs::read_to_string(&self.seed_file).unwrap_or_else(|e| {
            panic!(
                "cannot read {} ({e}); run `scripts/ad-lab/lab.sh up`",
                self.seed_file.display()
            )
        });
        let seed = parse_seed(&text);
        assert!(
            !seed.is_empty(),
            "{} lists no accounts",
            self.seed_file.display()
        );
        seed
    }

    /// A value of lab.env.
    pub fn var(&self, k: &str) -> &str {
        self.vars
            .get(k)
            .unwrap_or_else(|| panic!("lab.env lacks {k}"))
    }

    /// The account with replication rights.
    pub fn replicator(&self) -> SeedAccount {
        self.seed()
            .into_iter()
            .find(|a| a.has_flag("replicator"))
            .expect("seed.tsv has no replicator account")
    }

    pub fn admin_password(&self) -> String {
        std::fs::read_to_string(&self.admin_password_file)
            .expect("admin password file")
            .trim_end_matches('\n')
            .to_owned()
    }

    pub fn smb_conf(&self) -> &str {
        self.var("PHSYNC_LAB_SMB_CONF")
    }

    /// One seeded account by sAMAccountName.
    pub fn account(&self, sam: &str) -> SeedAccount {
        self.seed()
            .into_iter()
            .find(|a| a.sam == sam)
            .unwrap_or_else(|| panic!("{sam} is not in {}", self.seed_file.display()))
    }

    /// `OU=name,<base DN>`.
    pub fn ou(&self, name: &str) -> String {
        format!("OU={name},{}", self.base_dn)
    }
}

/// Connect to the DC a test config names, as the engine does (the bind password read from the
/// config's password source), returning the LDAP layer's own error.
pub async fn connect(
    source: &phsync_engine::config::SourceConfig,
) -> Result<phsync_directory::Directory, phsync_directory::DirectoryError> {
    let target = source.ldap_target().expect("the test config is valid");
    let password = source.password().expect("the test config's bind password");
    phsync_directory::Directory::connect(&target, &password).await
}
