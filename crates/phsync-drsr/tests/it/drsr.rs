//! MS-DRSR replication against the Samba AD lab (scripts/ad-lab). Needs `lab.sh up`.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use phsync_drsr::{
    Auth, DrsrClient, DrsrConfig, DrsrError, ReplicatedAccount, ReplicationCursor,
    DEFAULT_BATCH_SIZE,
};
use phsync_hash::NtHash;
use phsync_testkit::lab::{parse_env, parse_seed, Lab};
use zeroize::Zeroizing;

const DC: &str = "127.0.0.1";
const DC_FQDN: &str = "dc1.phs.test";

fn ntlm(lab: &Lab, user: &str, password: &str) -> DrsrConfig {
    DrsrConfig::new(
        DC,
        Auth::Ntlm {
            domain: lab.var("PHSYNC_LAB_DOMAIN").to_owned(),
            user: user.to_owned(),
            password: Zeroizing::new(password.to_owned()),
        },
    )
}

fn kerberos(lab: &Lab, user: &str, password: &str) -> DrsrConfig {
    DrsrConfig::new(
        DC,
        Auth::Kerberos {
            realm: lab.var("PHSYNC_LAB_REALM").to_owned(),
            kdc: format!("{DC}:88"),
            user: user.to_owned(),
            password: Zeroizing::new(password.to_owned()),
            spn: Some(format!("host/{DC_FQDN}")),
        },
    )
}

async fn replicator_client(lab: &Lab) -> DrsrClient {
    let r = lab.replicator();
    DrsrClient::connect(&ntlm(lab, &r.sam, &r.password))
        .await
        .expect("NTLM connect as the replicator")
}

fn expected(password: &str) -> NtHash {
    NtHash::from_password(password).unwrap()
}

#[test]
fn lab_file_parsers() {
    let env = parse_env("# c\nA=1\nB='x y'\nC=\"q\"\n");
    assert_eq!(env["A"], "1");
    assert_eq!(env["B"], "x y");
    assert_eq!(env["C"], "q");
    let seed = parse_seed("#sam\tpassword\tupn\tou\tflags\nfrank\tpw\t\tOU=X\tuser,no-upn\n");
    assert_eq!(seed.len(), 1);
    assert!(seed[0].upn.is_none());
    assert!(seed[0].has_flag("no-upn"));
}

#[tokio::test]
async fn ntlm_single_user_hashes_match_seed() {
    let lab = Lab::load();
    let mut c = replicator_client(&lab).await;
    for acct in &lab.seed() {
        let a = c
            .replicate_user(&acct.sam)
            .await
            .unwrap_or_else(|e| panic!("replicate {}: {e}", acct.sam));
        assert_eq!(a.sam_account_name.as_deref(), Some(acct.sam.as_str()));
        assert!(a.password_replicated, "{}", acct.sam);
        assert!(
            a.nt_hash.as_ref() == Some(&expected(&acct.password)),
            "NT hash of {} differs from MD4(UTF-16LE(password))",
            acct.sam
        );
        assert_eq!(a.user_principal_name, acct.upn, "{}", acct.sam);
        let sid = a.sid.as_ref().expect("objectSid");
        assert!(sid.to_string().starts_with("S-1-5-21-"));
        assert_eq!(a.rid, sid.rid());
        assert!(a.rid.unwrap() >= 1000);
        assert!(!a.guid.is_zero());
        assert!(!a.is_deleted);
        assert!(a.has_class("user"), "{}: {:?}", acct.sam, a.object_classes);
        let uac = a.user_account_control.expect("userAccountControl");
        assert_eq!(
            uac & 2 != 0,
            acct.has_flag("disabled"),
            "{} uac {uac:#x}",
            acct.sam
        );
        if acct.has_flag("computer") {
            assert!(a.has_class("computer"));
            assert_ne!(uac & 0x1000, 0);
        }
        if acct.has_flag("inetorgperson") {
            assert!(a.has_class("inetOrgPerson"));
        }
        let pls = a.pwd_last_set.expect("pwdLastSet").ticks();
        assert_eq!(
            pls == 0,
            acct.has_flag("must-change"),
            "{} pwdLastSet {pls}",
            acct.sam
        );
        let meta = a.password_metadata.expect("unicodePwd metadata");
        assert!(meta.version >= 1);
        // Set by the lab after 2020.
        assert!(meta.changed_unix > 1_577_836_800, "{meta:?}");
        assert!(a.usn.unwrap() > 0);
    }
    // By GUID and by DOMAIN\user give the same object.
    let alice = c.replicate_user("alice").await.unwrap();
    let by_guid = c.replicate_user(&alice.guid.to_string()).await.unwrap();
    assert_eq!(by_guid.guid, alice.guid);
    assert!(by_guid.nt_hash == alice.nt_hash);
    let nt4 = format!("{}\\alice", lab.var("PHSYNC_LAB_DOMAIN"));
    assert_eq!(c.replicate_user(&nt4).await.unwrap().guid, alice.guid);
    c.close().await.unwrap();
}

#[tokio::test]
async fn ntlm_unknown_account_is_not_found() {
    let lab = Lab::load();
    let mut c = replicator_client(&lab).await;
    let err = c.replicate_user("drsrtest-no-such-user").await.unwrap_err();
    assert!(matches!(err, DrsrError::NameNotFound { .. }), "{err}");
    c.close().await.unwrap();
}

fn check_seed_in(lab: &Lab, all: &[ReplicatedAccount]) {
    for acct in &lab.seed() {
        let a = all
            .iter()
            .find(|a| a.sam_account_name.as_deref() == Some(acct.sam.as_str()))
            .unwrap_or_else(|| panic!("{} missing from the domain replication", acct.sam));
        assert!(a.password_replicated);
        assert!(
            a.nt_hash.as_ref() == Some(&expected(&acct.password)),
            "NT hash of {} differs",
            acct.sam
        );
    }
}

#[tokio::test]
async fn ntlm_whole_domain_hashes_match_seed() {
    let lab = Lab::load();
    let mut c = replicator_client(&lab).await;
    let mut batches = 0;
    let mut all = Vec::new();
    // Small batches force several round trips with fMoreData.
    let cursor = c
        .replicate_domain_with(None, 7, &mut |b| {
            batches += 1;
            all.extend(b);
            Ok(())
        })
        .await
        .unwrap();
    assert!(batches > 2, "expected several batches, got {batches}");
    check_seed_in(&lab, &all);
    // krbtgt has a hash; nothing non-account slipped in.
    assert!(all
        .iter()
        .any(|a| a.sam_account_name.as_deref() == Some("krbtgt")));
    assert!(all.iter().all(|a| a.has_class("user")));
    let mut guids: Vec<_> = all.iter().map(|a| a.guid).collect();
    guids.sort_by_key(|g| g.0);
    guids.dedup();
    assert_eq!(guids.len(), all.len(), "an object came twice");
    assert!(cursor.usn_vector.high_obj_update > 0);
    assert!(!cursor.invocation_id.is_zero());
    assert!(cursor
        .naming_context
        .eq_ignore_ascii_case(lab.var("PHSYNC_LAB_BASE_DN")));
    // Default batch size gives the same accounts.
    let (again, _) = c.replicate_domain(None, DEFAULT_BATCH_SIZE).await.unwrap();
    check_seed_in(&lab, &again);
    c.close().await.unwrap();
}

fn samba_tool(lab: &Lab, args: &[&str]) -> std::process::Output {
    Command::new("samba-tool")
        .args(args)
        .args(["-s", lab.smb_conf()])
        .output()
        .expect("run samba-tool (the lab needs it on PATH)")
}

fn random_password(tag: &str) -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "Drsr-{tag}-{:x}-Aa1!",
        n ^ (std::process::id() as u128) << 20
    )
}

fn ensure_user(lab: &Lab, name: &str) {
    let pw = random_password("init");
    let out = samba_tool(lab, &["user", "create", name, &pw]);
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() || text.contains("already exists"),
        "samba-tool user create {name}: {text}"
    );
}

fn set_password(lab: &Lab, name: &str, pw: &str) {
    let out = samba_tool(
        lab,
        &["user", "setpassword", name, &format!("--newpassword={pw}")],
    );
    assert!(
        out.status.success(),
        "samba-tool user setpassword {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn set_description(lab: &Lab, name: &str, text: &str) {
    let ldif = format!(
        "dn: CN={name},CN=Users,{}\nchangetype: modify\nreplace: description\ndescription: {text}\n",
        lab.var("PHSYNC_LAB_BASE_DN")
    );
    let mut child = Command::new("ldapmodify")
        .args([
            "-x",
            "-H",
            lab.var("PHSYNC_LAB_LDAP_URL"),
            "-D",
            lab.var("PHSYNC_LAB_ADMIN_UPN"),
            "-y",
            lab.var("PHSYNC_LAB_ADMIN_PASSWORD_FILE"),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ldapmodify");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ldif.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ldapmodify description of {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn incremental_returns_only_password_changes_since_cursor() {
    let lab = Lab::load();
    let changed = ["drsrtest-inc-a", "drsrtest-inc-b", "drsrtest-inc-c"];
    let untouched_pw = "drsrtest-inc-d";
    for u in changed.iter().chain([&untouched_pw]) {
        ensure_user(&lab, u);
    }
    let mut c = replicator_client(&lab).await;
    let (_, cursor) = c.replicate_domain(None, DEFAULT_BATCH_SIZE).await.unwrap();
    // The caller persists the cursor: it must survive serialization.
    let json = serde_json::to_string(&cursor).unwrap();
    let cursor: ReplicationCursor = serde_json::from_str(&json).unwrap();

    let mut new_pw = Vec::new();
    for u in changed {
        let pw = random_password(u);
        set_password(&lab, u, &pw);
        new_pw.push((u, pw));
    }
    set_description(&lab, untouched_pw, &random_password("desc"));

    let (inc, next) = c
        .replicate_domain(Some(&cursor), DEFAULT_BATCH_SIZE)
        .await
        .unwrap();
    for (u, pw) in &new_pw {
        let a = inc
            .iter()
            .find(|a| {
                a.sam_account_name.as_deref() == Some(*u)
                    || a.password_replicated && a.nt_hash.as_ref() == Some(&expected(pw))
            })
            .unwrap_or_else(|| panic!("{u} missing from the incremental run: {inc:#?}"));
        assert!(a.password_replicated, "{u}");
        assert!(
            a.nt_hash.as_ref() == Some(&expected(pw)),
            "{u}: new hash expected"
        );
        assert!(a.rid.is_some());
        let meta = a.password_metadata.expect("unicodePwd metadata");
        assert!(meta.version >= 2, "{u}: {meta:?}");
    }
    let d_guid = c.resolve_account(untouched_pw).await.unwrap();
    if let Some(d) = inc.iter().find(|a| a.guid == d_guid) {
        assert!(
            !d.password_replicated,
            "description change reported as a password change"
        );
        assert!(d.nt_hash.is_none());
    }
    // Seeded accounts did not change.
    for acct in &lab.seed() {
        let g = c.resolve_account(&acct.sam).await.unwrap();
        assert!(
            !inc.iter().any(|a| a.guid == g && a.password_replicated),
            "{} reported as changed",
            acct.sam
        );
    }
    assert!(next.usn_vector.high_obj_update >= cursor.usn_vector.high_obj_update);
    // Nothing changed since `next` among our accounts.
    let (again, _) = c
        .replicate_domain(Some(&next), DEFAULT_BATCH_SIZE)
        .await
        .unwrap();
    for (u, _) in &new_pw {
        let g = c.resolve_account(u).await.unwrap();
        assert!(
            !again.iter().any(|a| a.guid == g && a.password_replicated),
            "{u} again"
        );
    }
    c.close().await.unwrap();
}

#[tokio::test]
async fn account_without_rights_gets_missing_rights_error() {
    let lab = Lab::load();
    let n = lab.account("norights");
    let mut c = DrsrClient::connect(&ntlm(&lab, &n.sam, &n.password))
        .await
        .expect("norights can still bind");
    let err = c.replicate_user("alice").await.unwrap_err();
    assert!(
        matches!(err, DrsrError::MissingReplicationRights { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("Replicating Directory Changes"));
    let err = c.replicate_domain(None, 100).await.unwrap_err();
    assert!(
        matches!(err, DrsrError::MissingReplicationRights { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn wrong_password_is_a_credentials_error() {
    let lab = Lab::load();
    let r = lab.replicator();
    let err = DrsrClient::connect(&ntlm(&lab, &r.sam, "not-the-password-1!"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DrsrError::InvalidCredentials { .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("not-the-password"));
    let err = DrsrClient::connect(&kerberos(&lab, &r.sam, "not-the-password-1!"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DrsrError::InvalidCredentials { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn ntlm_with_nt_hash_authenticates() {
    let lab = Lab::load();
    let r = lab.replicator();
    let cfg = DrsrConfig::new(
        DC,
        Auth::NtlmHash {
            domain: lab.var("PHSYNC_LAB_DOMAIN").to_owned(),
            user: r.sam.clone(),
            nt_hash: expected(&r.password),
        },
    );
    let mut c = DrsrClient::connect(&cfg).await.unwrap();
    let bob = lab.account("bob");
    let a = c.replicate_user(&bob.sam).await.unwrap();
    assert!(a.nt_hash == Some(expected(&bob.password)));
    c.close().await.unwrap();
}

#[tokio::test]
async fn kerberos_single_user_and_domain() {
    let lab = Lab::load();
    let r = lab.replicator();
    let mut c = DrsrClient::connect(&kerberos(&lab, &r.sam, &r.password))
        .await
        .expect("Kerberos connect");
    for sam in ["alice", "carol", "WS01$"] {
        let acct = lab.account(sam);
        let a = c.replicate_user(sam).await.unwrap();
        assert!(a.nt_hash == Some(expected(&acct.password)), "{sam}");
    }
    let (all, _) = c.replicate_domain(None, 50).await.unwrap();
    check_seed_in(&lab, &all);
    c.close().await.unwrap();
}

#[tokio::test]
async fn unreachable_dc_is_reported() {
    let mut cfg = DrsrConfig::new(
        "127.0.0.1",
        Auth::Ntlm {
            domain: "PHS".into(),
            user: "x".into(),
            password: Zeroizing::new("y".into()),
        },
    );
    cfg.epm_port = 9; // discard port: nothing listens on loopback
    let err = DrsrClient::connect(&cfg).await.unwrap_err();
    assert!(matches!(err, DrsrError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("endpoint mapper"));
}

#[test]
fn client_futures_are_send() {
    fn is_send<T: Send>(_: &T) {}
    let cfg = DrsrConfig::new(
        DC,
        Auth::Ntlm {
            domain: "D".into(),
            user: "u".into(),
            password: Zeroizing::new("p".into()),
        },
    );
    let fut = DrsrClient::connect(&cfg);
    is_send(&fut);
    async fn use_client(mut c: DrsrClient) {
        let _ = c.replicate_user("alice").await;
        let _ = c.replicate_domain(None, 10).await;
        let _ = c.close().await;
    }
    fn check(c: DrsrClient) {
        is_send(&use_client(c));
    }
    let _ = check;
}
