//! The Samba AD lab (scripts/ad-lab): lab.env and seed.tsv, for tests that talk to a DC.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

pub struct Lab {
    pub env: HashMap<String, String>,
    pub seed: Vec<SeedAccount>,
}

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

fn lab_dir() -> PathBuf {
    std::env::var_os("PHSYNC_LAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/phsync-ad-lab"))
}

/// Parse `KEY=VALUE` lines (optional single or double quotes, `#` comments).
pub fn parse_env(text: &str) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                .unwrap_or(v);
            m.insert(k.trim().to_owned(), v.to_owned());
        }
    }
    m
}

/// Parse seed.tsv: header line starting with `#`, then tab-separated rows.
pub fn parse_seed(text: &str) -> Vec<SeedAccount> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() < 5 {
                return None;
            }
            Some(SeedAccount {
                sam: f[0].to_owned(),
                password: f[1].to_owned(),
                upn: Some(f[2].to_owned()).filter(|u| !u.is_empty()),
                container: f[3].to_owned(),
                flags: f[4].split(',').map(str::to_owned).collect(),
            })
        })
        .collect()
}

impl Lab {
    /// Load the lab description or fail with instructions.
    pub fn load() -> Lab {
        let dir = lab_dir();
        let env_path = dir.join("lab.env");
        let env_text = std::fs::read_to_string(&env_path).unwrap_or_else(|e| {
            panic!(
                "the Samba AD lab is not set up ({}: {e}). Run `sudo scripts/ad-lab/lab.sh up` first.",
                env_path.display()
            )
        });
        let env = parse_env(&env_text);
        let seed_path = env
            .get("PHSYNC_LAB_SEED_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join("seed.tsv"));
        let seed_text = std::fs::read_to_string(&seed_path).unwrap_or_else(|e| {
            panic!(
                "the AD lab seed file is missing ({}: {e}). Run `sudo scripts/ad-lab/lab.sh up`.",
                seed_path.display()
            )
        });
        let seed = parse_seed(&seed_text);
        assert!(
            !seed.is_empty(),
            "{} lists no accounts",
            seed_path.display()
        );
        Lab { env, seed }
    }

    pub fn var(&self, k: &str) -> &str {
        self.env
            .get(k)
            .unwrap_or_else(|| panic!("lab.env lacks {k}"))
    }

    pub fn account(&self, sam: &str) -> &SeedAccount {
        self.seed
            .iter()
            .find(|a| a.sam == sam)
            .unwrap_or_else(|| panic!("seed.tsv lacks {sam}"))
    }

    pub fn replicator(&self) -> &SeedAccount {
        self.seed
            .iter()
            .find(|a| a.has_flag("replicator"))
            .expect("seed.tsv has no replicator account")
    }

    pub fn admin_password(&self) -> String {
        std::fs::read_to_string(self.var("PHSYNC_LAB_ADMIN_PASSWORD_FILE"))
            .expect("admin password file")
            .trim_end_matches('\n')
            .to_owned()
    }

    pub fn smb_conf(&self) -> &str {
        self.var("PHSYNC_LAB_SMB_CONF")
    }
}
