//! The password-quality audit's lab data: an OU of its own (the scope of a sync config)
//! with an account for every finding, a leaked-hash list and a weak
//! password dictionary that match them, and the expected accounts per finding.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use phsync_hash::NtHash;

use super::ad::unicode_pwd;
use super::sync_fixture::SyncFixture;

/// userAccountControl values (MS-ADTS 2.2.16).
const NORMAL: u32 = 0x200;
const PASSWD_NOTREQD: u32 = 0x20;
const ENCRYPTED_TEXT_PWD_ALLOWED: u32 = 0x80;
const DONT_EXPIRE_PASSWD: u32 = 0x1_0000;
/// HIBP-style breach count the leaked list gives the admin's password.
pub const ADMIN_BREACH_COUNT: u64 = 12_345;

pub struct AuditFixture {
    pub sync: SyncFixture,
    pub leaked: PathBuf,
    pub weak: PathBuf,
    /// Finding id → expected sAMAccountNames, sorted case-insensitively, in scope mode.
    pub expected: BTreeMap<&'static str, Vec<String>>,
    /// The computer account with its default password (found only with --all).
    pub default_computer: String,
    /// Every password set in the OU: no output may contain their hashes.
    pub passwords: Vec<String>,
    /// The admin's password, the one in the leaked list (benchmarks put it in theirs).
    pub leaked_password: String,
}

impl AuditFixture {
    pub fn new(tag: &str) -> AuditFixture {
        let sync = SyncFixture::new(tag, "");
        let ou = &sync.ou;
        // The OU's suffix is the time in ms; fixtures made in the same ms (parallel tests)
        // differ by this process-wide counter, and sAMAccountNames are domain-wide.
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let s = format!("{}{}", ou.suffix, (std::process::id() + n) % 100);
        let sam = |n: &str| format!("{n}{s}");
        let shared = format!("Shared-{s}-pw");
        let leaked_pw = format!("Leaked-{s}-pw");
        let weak_pw = format!("Summer{s}!");
        let mut passwords = vec![shared.clone(), leaked_pw.clone(), weak_pw.clone()];
        let leaked_pw_for_list = leaked_pw.clone();
        let mut ldif = Vec::new();
        let mut user = |name: &str, password: Option<&str>, uac: u32, extra: &str| {
            let pw = password
                .map(|p| format!("unicodePwd:: {}\n", unicode_pwd(p)))
                .unwrap_or_default();
            ldif.push(format!(
                "dn: {}\nobjectClass: user\nsAMAccountName: {name}\nuserPrincipalName: {name}@{}\n{pw}userAccountControl: {uac}\n{extra}",
                ou.user_dn(name),
                ou.lab.dns_domain
            ));
        };
        user(&sam("shareA"), Some(&shared), NORMAL, "");
        user(&sam("shareB"), Some(&shared), NORMAL, "");
        // Samba refuses an empty unicodePwd (minimum length) even with PASSWD_NOTREQD; an
        // account created without one is what an empty password looks like there.
        user(&sam("nopw"), None, NORMAL | PASSWD_NOTREQD, "");
        user(&sam("admin"), Some(&leaked_pw), NORMAL, "adminCount: 1\n");
        user(&sam("weak"), Some(&weak_pw), NORMAL, "");
        let nexp_pw = format!("Nexp-{s}-pw");
        user(
            &sam("nexp"),
            Some(&nexp_pw),
            NORMAL | DONT_EXPIRE_PASSWD,
            "",
        );
        let rev_pw = format!("Rev-{s}-pw");
        user(
            &sam("rev"),
            Some(&rev_pw),
            NORMAL | ENCRYPTED_TEXT_PWD_ALLOWED,
            "",
        );
        let clean_pw = format!("Clean-{s}-pw");
        user(&sam("clean"), Some(&clean_pw), NORMAL, "");
        // The stored credentials of an old domain, which Samba never writes itself: an LM
        // hash, and a password from before AES keys (scripts/ad-lab/legacy-credentials).
        let lm_pw = format!("Lm-{s}-pw");
        user(&sam("lmhash"), Some(&lm_pw), NORMAL, "");
        let old_pw = format!("Old-{s}-pw");
        user(&sam("oldpw"), Some(&old_pw), NORMAL, "");
        passwords.extend([nexp_pw, rev_pw, clean_pw, lm_pw, old_pw]);
        ou.ldif("ldapadd", &ldif.join("\n"));
        legacy_credentials(ou.lab.smb_conf(), &sam("lmhash"), &sam("oldpw"));
        // Computers: one with its default password (lower-case name), one without.
        let default_computer = format!("WS{s}$");
        let computer_pw = format!("ws{s}");
        ou.add_computer(&default_computer, &computer_pw);
        let other_pw = format!("Machine-{s}-random");
        ou.add_computer(&format!("PC{s}$"), &other_pw);
        passwords.extend([computer_pw, other_pw]);

        // The leaked list: the admin's password among unrelated hashes, sorted, CRLF.
        let mut lines: Vec<(String, u64)> = (0..2000)
            .map(|i| {
                let h = NtHash::from_password(&format!("unrelated-{s}-{i}")).unwrap();
                (h.to_upper_hex().to_string(), i + 1)
            })
            .collect();
        lines.push((
            NtHash::from_password(&leaked_pw_for_list)
                .unwrap()
                .to_upper_hex()
                .to_string(),
            ADMIN_BREACH_COUNT,
        ));
        lines.sort();
        let leaked = sync.dir.0.join("leaked-ntlm.txt");
        let text: String = lines.iter().map(|(h, c)| format!("{h}:{c}\r\n")).collect();
        std::fs::write(&leaked, text).unwrap();
        let weak = sync.dir.0.join("weak.txt");
        std::fs::write(
            &weak,
            format!("\u{feff}password\r\n{weak_pw}\r\nletmein\r\n{weak_pw}\n"),
        )
        .unwrap();

        let mut expected: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for (k, v) in [
            ("empty_password", vec![sam("nopw")]),
            ("weak_password", vec![sam("weak")]),
            ("leaked_password", vec![sam("admin")]),
            ("shared_password", vec![sam("shareA"), sam("shareB")]),
            ("default_computer_password", vec![]),
            ("lm_hash_present", vec![sam("lmhash")]),
            ("password_not_required", vec![sam("nopw")]),
            ("reversible_encryption", vec![sam("rev")]),
            ("aes_keys_missing", vec![sam("oldpw")]),
            ("password_never_expires", vec![sam("nexp")]),
            ("admin_with_finding", vec![sam("admin")]),
        ] {
            expected.insert(k, v);
        }
        AuditFixture {
            sync,
            leaked,
            weak,
            expected,
            default_computer,
            passwords,
            leaked_password: leaked_pw,
        }
    }

    /// Upper- and lower-case hex of every password's NT hash: no output may contain one.
    pub fn hash_forms(&self) -> Vec<String> {
        self.passwords
            .iter()
            .flat_map(|p| {
                let h = NtHash::from_password(p).unwrap().to_upper_hex().to_string();
                [h.to_lowercase(), h]
            })
            .collect()
    }

    /// Panics if `output` contains any hash of the fixture's passwords, or any 32-hex-digit
    /// run at all (no output of the audit has a reason to print one).
    pub fn assert_no_hash(&self, what: &str, output: &str) {
        for f in self.hash_forms() {
            assert!(
                !output.contains(&f),
                "{what}: an NT hash appears in the output"
            );
        }
        let re = regex::Regex::new("[0-9a-fA-F]{32}").unwrap();
        if let Some(m) = re.find(output) {
            panic!("{what}: 32 hex digits in the output: {}", m.as_str());
        }
    }
}

/// Stores an LM hash for `lm` and drops the AES keys of `no_aes`, through the lab's script
/// (Samba's own database layer, on the lab host).
fn legacy_credentials(smb_conf: &str, lm: &str, no_aes: &str) {
    let script = crate::repo_root().join("scripts/ad-lab/legacy-credentials");
    let out = std::process::Command::new("/usr/bin/python3")
        .arg(&script)
        .args([
            "--smb-conf",
            smb_conf,
            "--lm-hash",
            lm,
            "--without-aes",
            no_aes,
        ])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{}: {}{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
