//! The findings: what each account's credentials and settings say about its password.
//! Input records hold NT hashes (zeroized on drop); the report holds none, only account
//! names, so it can be printed, serialized and logged.

use phsync_hash::NtHash;
use serde::Serialize;

use crate::{AuditError, LeakedHashes, WeakPasswords};

/// userAccountControl flags the audit reads (MS-ADTS 2.2.16).
pub const UF_ACCOUNTDISABLE: u32 = 0x0002;
pub const UF_PASSWD_NOTREQD: u32 = 0x0020;
pub const UF_ENCRYPTED_TEXT_PWD_ALLOWED: u32 = 0x0080;
pub const UF_DONT_EXPIRE_PASSWD: u32 = 0x0001_0000;

/// MD4 of the empty UTF-16 string.
const EMPTY_NT_HASH: [u8; 16] = [
    0x31, 0xd6, 0xcf, 0xe0, 0xd1, 0x6a, 0xe9, 0x31, 0xb7, 0x3c, 0x59, 0xd7, 0xe0, 0xc0, 0x89, 0xc0,
];

/// One account as the audit sees it: names, flags and the credentials the DC replicated.
#[derive(Debug, Clone, Default)]
pub struct AuditAccount {
    pub sam_account_name: String,
    pub user_principal_name: Option<String>,
    pub distinguished_name: String,
    pub is_computer: bool,
    pub user_account_control: u32,
    /// adminCount = 1: the account is (or was) protected by AdminSDHolder.
    pub admin: bool,
    pub nt_hash: Option<NtHash>,
    /// dBCSPwd holds a value.
    pub lm_hash_present: bool,
    /// supplementalCredentials' Primary:Kerberos-Newer-Keys holds an AES key; `None` when
    /// the DC sent no supplementalCredentials at all.
    pub kerberos_aes_keys: Option<bool>,
    /// supplementalCredentials holds Primary:CLEARTEXT: the password is stored reversibly,
    /// even if the flag was cleared since (it stays until the next password change).
    pub cleartext_stored: bool,
}

impl AuditAccount {
    fn enabled(&self) -> bool {
        self.user_account_control & UF_ACCOUNTDISABLE == 0
    }
    fn has_flag(&self, f: u32) -> bool {
        self.user_account_control & f != 0
    }
}

/// The findings, in report order. `as_str` is the stable identifier in JSON and the C ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    EmptyPassword,
    WeakPassword,
    LeakedPassword,
    SharedPassword,
    DefaultComputerPassword,
    LmHashPresent,
    PasswordNotRequired,
    ReversibleEncryption,
    AesKeysMissing,
    PasswordNeverExpires,
    AdminWithFinding,
}

impl FindingKind {
    pub const ALL: [FindingKind; 11] = [
        FindingKind::EmptyPassword,
        FindingKind::WeakPassword,
        FindingKind::LeakedPassword,
        FindingKind::SharedPassword,
        FindingKind::DefaultComputerPassword,
        FindingKind::LmHashPresent,
        FindingKind::PasswordNotRequired,
        FindingKind::ReversibleEncryption,
        FindingKind::AesKeysMissing,
        FindingKind::PasswordNeverExpires,
        FindingKind::AdminWithFinding,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::EmptyPassword => "empty_password",
            FindingKind::WeakPassword => "weak_password",
            FindingKind::LeakedPassword => "leaked_password",
            FindingKind::SharedPassword => "shared_password",
            FindingKind::DefaultComputerPassword => "default_computer_password",
            FindingKind::LmHashPresent => "lm_hash_present",
            FindingKind::PasswordNotRequired => "password_not_required",
            FindingKind::ReversibleEncryption => "reversible_encryption",
            FindingKind::AesKeysMissing => "aes_keys_missing",
            FindingKind::PasswordNeverExpires => "password_never_expires",
            FindingKind::AdminWithFinding => "admin_with_finding",
        }
    }

    /// A heading for people.
    pub fn title(self) -> &'static str {
        match self {
            FindingKind::EmptyPassword => "Empty password",
            FindingKind::WeakPassword => "Password in the weak-password dictionary",
            FindingKind::LeakedPassword => "Password in the leaked-hash list",
            FindingKind::SharedPassword => "Password shared with other accounts",
            FindingKind::DefaultComputerPassword => "Computer account with its default password",
            FindingKind::LmHashPresent => "LM hash stored",
            FindingKind::PasswordNotRequired => "Password not required (PASSWD_NOTREQD)",
            FindingKind::ReversibleEncryption => "Password stored with reversible encryption",
            FindingKind::AesKeysMissing => "No Kerberos AES keys (password older than AES)",
            FindingKind::PasswordNeverExpires => "Password never expires",
            FindingKind::AdminWithFinding => "Administrators (adminCount) with any of the above",
        }
    }
}

/// An account named in a finding. Never carries a hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportAccount {
    pub sam_account_name: String,
    pub user_principal_name: Option<String>,
    pub distinguished_name: String,
    pub enabled: bool,
    pub computer: bool,
    /// shared_password: the group (1, 2, ...) of accounts sharing one password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<u32>,
    /// leaked_password: how often the password was seen in breaches (HIBP's count), when
    /// the list has counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breach_count: Option<u64>,
    /// admin_with_finding: the account's other findings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<FindingKind>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub finding: FindingKind,
    pub title: &'static str,
    /// False when the input this finding needs was not given (no dictionary, no leaked
    /// list): its empty account list then means "not checked", not "none".
    pub checked: bool,
    pub count: usize,
    /// shared_password: number of groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<u32>,
    pub accounts: Vec<ReportAccount>,
}

/// The whole audit: counts first, then each finding with its accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    pub accounts_audited: usize,
    /// Accounts named in at least one finding.
    pub accounts_with_findings: usize,
    pub findings: Vec<Finding>,
}

impl AuditReport {
    pub fn finding(&self, kind: FindingKind) -> &Finding {
        self.findings
            .iter()
            .find(|f| f.finding == kind)
            .expect("every finding is in the report")
    }

    /// Whether any finding names an account.
    pub fn has_findings(&self) -> bool {
        self.accounts_with_findings > 0
    }
}

/// The dictionaries an audit checks against; each is optional.
#[derive(Default, Clone, Copy)]
pub struct AuditLists<'a> {
    pub leaked: Option<&'a LeakedHashes>,
    pub weak: Option<&'a WeakPasswords>,
}

/// The NT hash a new computer account gets when created with "pre-Windows 2000
/// compatible" or reset to its default: its lower-case name without the `$`, at most 14
/// characters.
pub fn default_computer_password(sam_account_name: &str) -> String {
    sam_account_name
        .strip_suffix('$')
        .unwrap_or(sam_account_name)
        .to_lowercase()
        .chars()
        .take(14)
        .collect()
}

/// Check every account. Accounts are reported sorted by sAMAccountName within a finding.
pub fn analyze(
    accounts: &[AuditAccount],
    lists: AuditLists<'_>,
) -> Result<AuditReport, AuditError> {
    let mut per_account: Vec<Vec<FindingKind>> = vec![Vec::new(); accounts.len()];
    let mut breach: Vec<Option<u64>> = vec![None; accounts.len()];
    let mut group: Vec<Option<u32>> = vec![None; accounts.len()];

    for (i, a) in accounts.iter().enumerate() {
        let f = &mut per_account[i];
        let hash = a.nt_hash.as_ref();
        let empty = match hash {
            Some(h) => h.as_bytes() == &EMPTY_NT_HASH,
            // No unicodePwd at all: with PASSWD_NOTREQD the DC accepts an empty password
            // for this account, so it is as good as empty.
            None => a.has_flag(UF_PASSWD_NOTREQD),
        };
        if empty {
            f.push(FindingKind::EmptyPassword);
        }
        if let (Some(h), Some(w)) = (hash, lists.weak) {
            if !empty && w.contains(h) {
                f.push(FindingKind::WeakPassword);
            }
        }
        if let (Some(h), Some(l)) = (hash, lists.leaked) {
            if let Some(e) = l.try_lookup(h)? {
                f.push(FindingKind::LeakedPassword);
                breach[i] = e.breach_count;
            }
        }
        if a.is_computer {
            if let Some(h) = hash {
                let default =
                    zeroize::Zeroizing::new(default_computer_password(&a.sam_account_name));
                if !default.is_empty() && NtHash::from_password(&default).ok().as_ref() == Some(h) {
                    f.push(FindingKind::DefaultComputerPassword);
                }
            }
        }
        if a.lm_hash_present {
            f.push(FindingKind::LmHashPresent);
        }
        if a.has_flag(UF_PASSWD_NOTREQD) {
            f.push(FindingKind::PasswordNotRequired);
        }
        if a.has_flag(UF_ENCRYPTED_TEXT_PWD_ALLOWED) || a.cleartext_stored {
            f.push(FindingKind::ReversibleEncryption);
        }
        if hash.is_some() && a.kerberos_aes_keys != Some(true) {
            f.push(FindingKind::AesKeysMissing);
        }
        if a.has_flag(UF_DONT_EXPIRE_PASSWD) {
            f.push(FindingKind::PasswordNeverExpires);
        }
    }

    // Shared passwords: sort account indexes by hash and take runs; no hash is copied.
    let mut with_hash: Vec<usize> = (0..accounts.len())
        .filter(|&i| accounts[i].nt_hash.is_some())
        .collect();
    let key = |i: &usize| accounts[*i].nt_hash.as_ref().map(|h| h.as_bytes());
    with_hash.sort_by(|a, b| key(a).cmp(&key(b)));
    let mut runs: Vec<Vec<usize>> = Vec::new();
    for w in with_hash.chunk_by(|a, b| key(a) == key(b)) {
        if w.len() > 1 {
            let mut run = w.to_vec();
            run.sort_by(|a, b| sort_key(&accounts[*a]).cmp(&sort_key(&accounts[*b])));
            runs.push(run);
        }
    }
    // Largest groups first, then by first name: stable numbering across runs.
    runs.sort_by(|a, b| {
        b.len()
            .cmp(&a.len())
            .then_with(|| sort_key(&accounts[a[0]]).cmp(&sort_key(&accounts[b[0]])))
    });
    for (n, run) in runs.iter().enumerate() {
        for &i in run {
            group[i] = Some(n as u32 + 1);
            per_account[i].push(FindingKind::SharedPassword);
        }
    }
    for (i, a) in accounts.iter().enumerate() {
        if a.admin && !per_account[i].is_empty() {
            per_account[i].push(FindingKind::AdminWithFinding);
        }
        per_account[i].sort();
    }

    let mut order: Vec<usize> = (0..accounts.len()).collect();
    order.sort_by(|a, b| sort_key(&accounts[*a]).cmp(&sort_key(&accounts[*b])));
    let findings = FindingKind::ALL
        .iter()
        .map(|&kind| {
            let mut listed: Vec<ReportAccount> = order
                .iter()
                .filter(|&&i| per_account[i].contains(&kind))
                .map(|&i| {
                    let a = &accounts[i];
                    ReportAccount {
                        sam_account_name: a.sam_account_name.clone(),
                        user_principal_name: a.user_principal_name.clone(),
                        distinguished_name: a.distinguished_name.clone(),
                        enabled: a.enabled(),
                        computer: a.is_computer,
                        group: (kind == FindingKind::SharedPassword)
                            .then_some(group[i])
                            .flatten(),
                        breach_count: (kind == FindingKind::LeakedPassword)
                            .then_some(breach[i])
                            .flatten(),
                        findings: if kind == FindingKind::AdminWithFinding {
                            per_account[i]
                                .iter()
                                .copied()
                                .filter(|k| *k != FindingKind::AdminWithFinding)
                                .collect()
                        } else {
                            Vec::new()
                        },
                    }
                })
                .collect();
            if kind == FindingKind::SharedPassword {
                listed.sort_by_key(|a| a.group);
            }
            Finding {
                finding: kind,
                title: kind.title(),
                checked: match kind {
                    FindingKind::WeakPassword => lists.weak.is_some(),
                    FindingKind::LeakedPassword => lists.leaked.is_some(),
                    _ => true,
                },
                count: listed.len(),
                groups: (kind == FindingKind::SharedPassword).then_some(runs.len() as u32),
                accounts: listed,
            }
        })
        .collect();
    Ok(AuditReport {
        accounts_audited: accounts.len(),
        accounts_with_findings: per_account.iter().filter(|f| !f.is_empty()).count(),
        findings,
    })
}

fn sort_key(a: &AuditAccount) -> (String, &str) {
    (
        a.sam_account_name.to_lowercase(),
        a.sam_account_name.as_str(),
    )
}

/// The report for people: counts first, then each finding with its accounts. `clean` makes
/// a name from the directory fit for a terminal (the CLI escapes control characters).
pub fn render_text(report: &AuditReport, scope: &str, clean: &dyn Fn(&str) -> String) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Password quality audit: {} accounts ({scope}), {} with findings",
        report.accounts_audited, report.accounts_with_findings
    );
    let _ = writeln!(s);
    for f in &report.findings {
        let (count, note) = match (f.checked, f.groups) {
            (false, _) => ("-".to_owned(), "  (not checked: no list given)".to_owned()),
            (true, Some(g)) => (f.count.to_string(), format!("  ({g} groups)")),
            (true, None) => (f.count.to_string(), String::new()),
        };
        let _ = writeln!(s, "{count:>6}  {}{note}", f.title);
    }
    for f in report.findings.iter().filter(|f| !f.accounts.is_empty()) {
        let _ = writeln!(s);
        let _ = writeln!(s, "{} ({}):", f.title, f.count);
        for a in &f.accounts {
            let mut extra = Vec::new();
            if let Some(g) = a.group {
                extra.push(format!("group {g}"));
            }
            if let Some(c) = a.breach_count {
                extra.push(format!("seen {c} times"));
            }
            if !a.findings.is_empty() {
                extra.push(
                    a.findings
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                );
            }
            if !a.enabled {
                extra.push("disabled".into());
            }
            let extra = if extra.is_empty() {
                String::new()
            } else {
                format!("  [{}]", extra.join("; "))
            };
            let _ = writeln!(
                s,
                "  {:<20} {:<32} {}{extra}",
                clean(&a.sam_account_name),
                clean(a.user_principal_name.as_deref().unwrap_or("-")),
                clean(&a.distinguished_name)
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn acct(sam: &str, pw: Option<&str>, uac: u32) -> AuditAccount {
        AuditAccount {
            sam_account_name: sam.into(),
            user_principal_name: Some(format!("{sam}@phs.test")),
            distinguished_name: format!("CN={sam},OU=t,DC=phs,DC=test"),
            is_computer: sam.ends_with('$'),
            user_account_control: uac,
            admin: false,
            nt_hash: pw.map(|p| NtHash::from_password(p).unwrap()),
            lm_hash_present: false,
            kerberos_aes_keys: pw.map(|_| true),
            cleartext_stored: false,
        }
    }

    fn names(r: &AuditReport, k: FindingKind) -> Vec<&str> {
        r.finding(k)
            .accounts
            .iter()
            .map(|a| a.sam_account_name.as_str())
            .collect()
    }

    #[test]
    fn empty_hash_constant_is_md4_of_nothing() {
        assert_eq!(
            NtHash::from_password("").unwrap().as_bytes(),
            &EMPTY_NT_HASH
        );
    }

    #[test]
    fn every_finding_on_constructed_records() {
        let mut leaked_lines: Vec<String> = ["Leaked-1", "Shared-9"]
            .iter()
            .map(|p| NtHash::from_password(p).unwrap().to_upper_hex().to_string())
            .collect();
        leaked_lines.sort();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "{}:42\n{}:7", leaked_lines[0], leaked_lines[1]).unwrap();
        // Which count belongs to which depends on the sort; look it up afterwards.
        let leaked = LeakedHashes::open(f.path()).unwrap();
        let weak = WeakPasswords::from_reader("Summer2024\nPassw0rd\n".as_bytes()).unwrap();

        let mut admin = acct("admin1", Some("Leaked-1"), 512);
        admin.admin = true;
        let mut lm = acct("lmuser", Some("Fine-pw-1"), 512);
        lm.lm_hash_present = true;
        let mut noaes = acct("oldpw", Some("Fine-pw-2"), 512);
        noaes.kerberos_aes_keys = Some(false);
        let mut nosupp = acct("nosupp", Some("Fine-pw-3"), 512);
        nosupp.kerberos_aes_keys = None;
        let mut clear = acct("clearstored", Some("Fine-pw-7"), 512);
        clear.cleartext_stored = true;
        let mut cleanadmin = acct("cleanadmin", Some("Fine-pw-4"), 512);
        cleanadmin.admin = true;
        let accounts = vec![
            admin,
            acct("empty1", Some(""), 512),
            acct("nopw", None, 512 | UF_PASSWD_NOTREQD),
            acct("unset", None, 512),
            acct("weak1", Some("Summer2024"), 512),
            acct("shareA", Some("Shared-9"), 512),
            acct("shareB", Some("Shared-9"), 512),
            acct("shareC", Some("Other-shared"), 512),
            acct("shareD", Some("Other-shared"), 512),
            acct("shareE", Some("Other-shared"), 512),
            acct("ws01$", Some("ws01"), 4096),
            acct("longcomputername$", Some("longcomputerna"), 4096),
            acct("ws02$", Some("random-machine-pw"), 4096),
            lm,
            acct("nexp", Some("Fine-pw-5"), 512 | UF_DONT_EXPIRE_PASSWD),
            acct(
                "rev",
                Some("Fine-pw-6"),
                512 | UF_ENCRYPTED_TEXT_PWD_ALLOWED,
            ),
            noaes,
            nosupp,
            cleanadmin,
            clear,
            acct("disabled1", Some("Passw0rd"), 514),
        ];
        let r = analyze(
            &accounts,
            AuditLists {
                leaked: Some(&leaked),
                weak: Some(&weak),
            },
        )
        .unwrap();
        use FindingKind::*;
        assert_eq!(names(&r, EmptyPassword), ["empty1", "nopw"]);
        assert_eq!(names(&r, WeakPassword), ["disabled1", "weak1"]);
        assert_eq!(names(&r, LeakedPassword), ["admin1", "shareA", "shareB"]);
        let counts: Vec<Option<u64>> = r
            .finding(LeakedPassword)
            .accounts
            .iter()
            .map(|a| a.breach_count)
            .collect();
        let c_admin = counts[0].unwrap();
        assert!(c_admin == 42 || c_admin == 7);
        assert_eq!(counts[1], counts[2]);
        assert_ne!(counts[0], counts[1]);
        // Largest group first.
        assert_eq!(
            names(&r, SharedPassword),
            ["shareC", "shareD", "shareE", "shareA", "shareB"]
        );
        let groups: Vec<Option<u32>> = r
            .finding(SharedPassword)
            .accounts
            .iter()
            .map(|a| a.group)
            .collect();
        assert_eq!(groups, [Some(1), Some(1), Some(1), Some(2), Some(2)]);
        assert_eq!(r.finding(SharedPassword).groups, Some(2));
        assert_eq!(
            names(&r, DefaultComputerPassword),
            ["longcomputername$", "ws01$"]
        );
        assert_eq!(names(&r, LmHashPresent), ["lmuser"]);
        assert_eq!(names(&r, PasswordNotRequired), ["nopw"]);
        assert_eq!(names(&r, ReversibleEncryption), ["clearstored", "rev"]);
        assert_eq!(names(&r, AesKeysMissing), ["nosupp", "oldpw"]);
        assert_eq!(names(&r, PasswordNeverExpires), ["nexp"]);
        assert_eq!(names(&r, AdminWithFinding), ["admin1"]);
        assert_eq!(
            r.finding(AdminWithFinding).accounts[0].findings,
            [LeakedPassword]
        );
        assert!(
            !r.finding(WeakPassword)
                .accounts
                .iter()
                .find(|a| a.sam_account_name == "disabled1")
                .unwrap()
                .enabled
        );
        assert_eq!(r.accounts_audited, accounts.len());
        // Everyone but unset, ws02$ and cleanadmin.
        assert_eq!(r.accounts_with_findings, accounts.len() - 3);

        let json = serde_json::to_string(&r).unwrap();
        let text = render_text(&r, "test", &|s| s.to_owned());
        for a in &accounts {
            if let Some(h) = &a.nt_hash {
                let up = h.to_upper_hex();
                for out in [&json, &text] {
                    assert!(!out.contains(up.as_str()) && !out.contains(&up.to_lowercase()));
                }
            }
        }
        assert!(text.contains("Password shared with other accounts") && text.contains("group 2"));
    }

    #[test]
    fn unchecked_lists_are_marked_and_nothing_found_is_no_findings() {
        let r = analyze(
            &[acct("fine", Some("Fine-pw-1"), 512)],
            AuditLists::default(),
        )
        .unwrap();
        assert!(!r.finding(FindingKind::WeakPassword).checked);
        assert!(!r.finding(FindingKind::LeakedPassword).checked);
        assert!(r.finding(FindingKind::EmptyPassword).checked);
        assert!(!r.has_findings());
        assert!(render_text(&r, "test", &|s| s.to_owned()).contains("(not checked: no list given)"));
    }

    #[test]
    fn default_computer_password_rule() {
        assert_eq!(default_computer_password("WS01$"), "ws01");
        assert_eq!(
            default_computer_password("VERYLONGCOMPUTERNAME$"),
            "verylongcomput"
        );
        assert_eq!(default_computer_password("ÄBC$"), "äbc");
    }
}
