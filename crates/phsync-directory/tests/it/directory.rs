//! The directory layer against the real Samba AD DC of scripts/ad-lab (see tests/common/lab.rs).
//! Every assertion on sets is restricted to the seeded accounts, so extra accounts (another
//! engineer's `*test-*` users) do not disturb it.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};

use phsync_directory::{AccountProblem, Directory, DirectoryError, DirectoryUser};
use phsync_engine::config::Config;
use phsync_testkit::lab::Lab;

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn toml_str(s: &str) -> String {
    format!("{s:?}")
}

/// A config for the lab: admin bind over LDAPS unless `source_extra` overrides keys.
fn config_text(
    lab: &Lab,
    url: &str,
    ca: &Path,
    user: &str,
    pw_file: &Path,
    extra: &str,
    sync: &str,
) -> String {
    format!(
        "[source]\nldap_url = {}\nca_file = {}\nrealm = {}\nnetbios_domain = {}\nusername = {}\npassword_file = {}\ntimeout_seconds = 10\n{extra}\n[sync]\n{sync}\n",
        toml_str(url),
        toml_str(ca.to_str().unwrap()),
        toml_str(&lab.realm),
        toml_str(&lab.domain),
        toml_str(user),
        toml_str(pw_file.to_str().unwrap()),
    )
}

fn admin_config(lab: &Lab, sync: &str) -> Config {
    let text = config_text(
        lab,
        &lab.ldaps_url,
        &lab.ca_file,
        &lab.admin_upn,
        &lab.admin_password_file,
        "",
        sync,
    );
    Config::parse(&text, Path::new("/")).unwrap()
}

/// A password file (mode 0600) in a fresh temp dir.
fn password_file(password: &str) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pw");
    std::fs::write(&p, password).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    (dir, p)
}

fn connect(config: &Config) -> Result<Directory, DirectoryError> {
    block_on(phsync_testkit::lab::connect(&config.source))
}

fn seeded(lab: &Lab) -> BTreeSet<String> {
    lab.seed().into_iter().map(|a| a.sam).collect()
}

/// The in-scope users under `sync`, as seeded sAMAccountNames (plus krbtgt/Administrator/Guest
/// if they ever showed up, so their exclusion is checked too).
fn scoped(lab: &Lab, sync: &str) -> BTreeSet<String> {
    let users = all_users(lab, sync);
    let mut watch = seeded(lab);
    watch.extend(["krbtgt", "Administrator", "Guest"].map(String::from));
    users
        .into_iter()
        .map(|u| u.sam_account_name)
        .filter(|s| watch.contains(s))
        .collect()
}

fn all_users(lab: &Lab, sync: &str) -> Vec<DirectoryUser> {
    let config = admin_config(lab, sync);
    block_on(async {
        let mut dir = phsync_testkit::lab::connect(&config.source).await.unwrap();
        let users = dir.users(&config.sync.scope()).await.unwrap();
        dir.close().await;
        users
    })
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn resolve(lab: &Lab, name: &str) -> Result<DirectoryUser, DirectoryError> {
    let config = admin_config(lab, "");
    block_on(async {
        let mut dir = phsync_testkit::lab::connect(&config.source).await.unwrap();
        dir.resolve_user(name).await
    })
}

#[test]
fn root_dse() {
    let lab = Lab::load();
    let dir = connect(&admin_config(&lab, "")).unwrap();
    let r = dir.root_dse();
    assert_eq!(r.default_naming_context, lab.base_dn);
    assert_eq!(
        r.dns_host_name.to_lowercase(),
        format!("dc1.{}", lab.dns_domain)
    );
    assert!(r.highest_committed_usn > 0);
    assert!(
        r.ds_service_name.starts_with("CN=NTDS Settings,"),
        "{}",
        r.ds_service_name
    );
    assert!(r
        .ds_service_name
        .ends_with(&format!("CN=Configuration,{}", lab.base_dn)));
}

#[test]
fn default_scope() {
    let lab = Lab::load();
    assert_eq!(
        scoped(&lab, ""),
        set(&[
            "alice",
            "bob",
            "carol",
            "dave",
            "frank",
            "grace",
            "demo1",
            "demo2",
            "norights",
            "phs-replicator"
        ])
    );
}

#[test]
fn paging_returns_every_page_and_samba_unpaged_finds_the_same() {
    // With 2 entries a page, the listing needs many pages and must still be complete. By
    // default Samba is read unpaged (its paged results cost four to five times its plain
    // search; a DC that caps unpaged searches: see the `capped` tests).
    let lab = Lab::load();
    let config = admin_config(&lab, "include_disabled = true");
    let (small, default) = block_on(async {
        let mut dir = phsync_testkit::lab::connect(&config.source).await.unwrap();
        assert!(dir.unpaged_first(), "{:?}", dir.root_dse());
        let scope = config.sync.scope();
        let default = dir.users(&scope).await.unwrap();
        dir.set_page_size(2);
        assert!(!dir.unpaged_first());
        let small = dir.users(&scope).await.unwrap();
        (small, default)
    });
    assert!(default.len() >= 11, "{}", default.len());
    // Other suites create and change their own accounts on the shared DC meanwhile, so
    // compare the stable accounts' identities, not whole records.
    let stable = |users: &[DirectoryUser]| -> Vec<(String, String)> {
        let mut v: Vec<_> = users
            .iter()
            .filter(|u| !u.sam_account_name.contains("test-"))
            // Suites running beside this one add users in OUs of their own: the seeded OUs
            // are the stable part.
            .filter(|u| {
                ["OU=Sales,", "OU=Engineering,", "OU=Demo,"]
                    .iter()
                    .any(|ou| u.dn.contains(ou))
            })
            .map(|u| (u.sam_account_name.clone(), u.dn.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(stable(&small), stable(&default));
}

#[test]
fn include_disabled_adds_erin_only() {
    let lab = Lab::load();
    assert_eq!(
        scoped(&lab, "include_disabled = true"),
        set(&[
            "alice",
            "bob",
            "carol",
            "dave",
            "erin",
            "frank",
            "grace",
            "demo1",
            "demo2",
            "norights",
            "phs-replicator"
        ])
    );
}

#[test]
fn one_ou() {
    let lab = Lab::load();
    let sales = lab.ou("Sales");
    let sync = format!("scope_ous = [{}]", toml_str(&sales));
    let users = all_users(&lab, &sync);
    // Every user found lies in the OU; the seeded ones are exactly these.
    assert!(users.iter().all(|u| u
        .dn
        .to_lowercase()
        .ends_with(&format!(",{}", sales.to_lowercase()))));
    assert_eq!(scoped(&lab, &sync), set(&["alice", "bob", "grace"]));
    assert_eq!(
        scoped(&lab, &format!("{sync}\ninclude_disabled = true")),
        set(&["alice", "bob", "erin", "grace"])
    );
}

#[test]
fn two_ous() {
    let lab = Lab::load();
    let sync = format!(
        "scope_ous = [{}, {}]",
        toml_str(&lab.ou("Engineering")),
        toml_str(&lab.ou("Demo"))
    );
    assert_eq!(
        scoped(&lab, &sync),
        set(&["carol", "dave", "frank", "demo1", "demo2"])
    );
}

#[test]
fn group_scope_includes_nested_members() {
    let lab = Lab::load();
    assert_eq!(
        scoped(&lab, "scope_groups = [\"PHS-Sync-Users\"]"),
        set(&["alice", "dave"])
    );
    // The same group by DN; the inner group alone has only dave.
    let dn = format!("CN=PHS-Sync-Users,CN=Users,{}", lab.base_dn);
    assert_eq!(
        scoped(&lab, &format!("scope_groups = [{}]", toml_str(&dn))),
        set(&["alice", "dave"])
    );
    assert_eq!(
        scoped(&lab, "scope_groups = [\"PHS-Sync-Inner\"]"),
        set(&["dave"])
    );
}

#[test]
fn groups_and_ous_intersect() {
    let lab = Lab::load();
    let sync = format!(
        "scope_groups = [\"PHS-Sync-Users\"]\nscope_ous = [{}]",
        toml_str(&lab.ou("Engineering"))
    );
    assert_eq!(scoped(&lab, &sync), set(&["dave"]));
    let sync = format!(
        "scope_groups = [\"PHS-Sync-Users\"]\nscope_ous = [{}]",
        toml_str(&lab.ou("Demo"))
    );
    assert_eq!(scoped(&lab, &sync), set(&[]));
}

#[test]
fn unknown_group_and_ou_are_errors() {
    let lab = Lab::load();
    let config = admin_config(&lab, "scope_groups = [\"No-Such-Group-x9\"]");
    let err = block_on(async {
        let mut dir = phsync_testkit::lab::connect(&config.source).await.unwrap();
        dir.users(&config.sync.scope()).await.unwrap_err()
    });
    assert!(
        matches!(err, DirectoryError::UnknownGroup { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("No-Such-Group-x9"));
    // A user is not a group.
    let config = admin_config(&lab, "scope_groups = [\"alice\"]");
    let err = block_on(async {
        let mut dir = phsync_testkit::lab::connect(&config.source).await.unwrap();
        dir.users(&config.sync.scope()).await.unwrap_err()
    });
    assert!(
        matches!(err, DirectoryError::UnknownGroup { .. }),
        "{err:?}"
    );
    let ou = lab.ou("NoSuchOU");
    let config = admin_config(&lab, &format!("scope_ous = [{}]", toml_str(&ou)));
    let err = block_on(async {
        let mut dir = phsync_testkit::lab::connect(&config.source).await.unwrap();
        dir.users(&config.sync.scope()).await.unwrap_err()
    });
    assert!(matches!(err, DirectoryError::UnknownOu { .. }), "{err:?}");
    assert!(err.to_string().contains("OU=NoSuchOU"));
}

#[test]
fn user_records() {
    let lab = Lab::load();
    let users = all_users(&lab, "include_disabled = true");
    let by = |sam: &str| {
        users
            .iter()
            .find(|u| u.sam_account_name == sam)
            .unwrap()
            .clone()
    };
    let frank = by("frank");
    assert_eq!(
        frank.user_principal_name,
        format!("frank@{}", lab.realm.to_lowercase())
    );
    assert!(frank.upn_derived);
    let alice = by("alice");
    assert_eq!(alice.user_principal_name, "alice@phs.test");
    assert!(!alice.upn_derived);
    assert!(alice.enabled() && !alice.must_change_password());
    assert!(alice.pwd_last_set.is_instant());
    let grace = by("grace");
    assert!(grace.must_change_password() && grace.enabled());
    let erin = by("erin");
    assert!(!erin.enabled());
    assert_eq!(erin.user_account_control & 2, 2);
    // SIDs share the domain prefix; RIDs are distinct user RIDs.
    let domain_sid = |u: &DirectoryUser| {
        let s = u.object_sid.to_string();
        s[..s.rfind('-').unwrap()].to_string()
    };
    let mut guids = BTreeSet::new();
    let mut rids = BTreeSet::new();
    for u in &users {
        assert!(
            u.object_sid.to_string().starts_with("S-1-5-21-"),
            "{}",
            u.object_sid
        );
        assert_eq!(domain_sid(u), domain_sid(&alice));
        assert_eq!(
            u.object_sid.to_string(),
            format!("{}-{}", domain_sid(u), u.rid)
        );
        assert!(u.rid >= 1000, "{} rid {}", u.sam_account_name, u.rid);
        assert!(guids.insert(u.object_guid));
        assert!(rids.insert(u.rid));
        assert_ne!(u.object_guid.0, [0u8; 16]);
        assert_eq!(u.source_anchor().len(), 24);
        assert!(u.usn_changed > 0);
        assert!(
            u.when_changed.unix_seconds() > 1_600_000_000,
            "{:?}",
            u.when_changed
        );
    }
    // JSON carries the canonical GUID and the anchor.
    let json = serde_json::to_value(&alice).unwrap();
    assert_eq!(json["object_guid"], alice.object_guid.to_string());
    assert_eq!(json["source_anchor"], alice.source_anchor());
    assert_eq!(json["rid"], alice.rid);
    assert_eq!(json["enabled"], true);
}

#[test]
fn resolve_by_every_form() {
    let lab = Lab::load();
    let alice = resolve(&lab, "alice").unwrap();
    assert_eq!(alice.dn, format!("CN=alice,{}", lab.ou("Sales")));
    let forms = [
        format!("{}\\alice", lab.domain),
        format!("{}\\alice", lab.domain.to_lowercase()),
        "alice@phs.test".to_string(),
        alice.dn.clone(),
        alice.object_guid.to_string(),
        format!("{{{}}}", alice.object_guid.to_string().to_uppercase()),
        "ALICE".to_string(),
    ];
    for form in forms {
        let u = resolve(&lab, &form).unwrap_or_else(|e| panic!("{form}: {e}"));
        assert_eq!(u, alice, "{form}");
    }
    // GUID round trip for every seeded user object, disabled and must-change included.
    for sam in ["bob", "erin", "grace", "frank", "phs-replicator"] {
        let u = resolve(&lab, sam).unwrap();
        assert_eq!(u.sam_account_name, sam);
        assert_eq!(resolve(&lab, &u.object_guid.to_string()).unwrap(), u);
    }
    // frank has no UPN: his derived one finds him.
    let frank = resolve(&lab, "frank@PHS.TEST").unwrap();
    assert!(frank.upn_derived);
}

#[test]
fn resolve_not_found() {
    let lab = Lab::load();
    for name in [
        "nobody-x9",
        "OTHERDOM\\alice",
        "nobody-x9@phs.test",
        "CN=nobody,OU=Sales,DC=phs,DC=test",
        "00000000-0000-0000-0000-000000000001",
        "ivan",  // inetOrgPerson: not a user object for us
        "WS01$", // computer
        "*",     // a filter metacharacter is a literal name, not a wildcard
        "al*",
        "alice)(sAMAccountName=*",
    ] {
        match resolve(&lab, name) {
            Err(DirectoryError::UserNotFound { name: n }) => assert_eq!(n, name),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn bind_as_sync_account_with_bare_sam() {
    let lab = Lab::load();
    let acct = lab.account("phs-replicator");
    let (_d, pw) = password_file(&acct.password);
    let text = config_text(
        &lab,
        &lab.ldaps_url,
        &lab.ca_file,
        "phs-replicator",
        &pw,
        "",
        "",
    );
    let config = Config::parse(&text, Path::new("/")).unwrap();
    let dir = connect(&config).unwrap();
    assert_eq!(dir.root_dse().default_naming_context, lab.base_dn);
}

#[test]
fn starttls_works() {
    let lab = Lab::load();
    let text = config_text(
        &lab,
        &lab.ldap_url,
        &lab.ca_file,
        &lab.admin_upn,
        &lab.admin_password_file,
        "starttls = true",
        "",
    );
    let config = Config::parse(&text, Path::new("/")).unwrap();
    // One runtime for the whole session: the connection is driven by a task on it.
    let u = block_on(async {
        let mut dir = phsync_testkit::lab::connect(&config.source).await.unwrap();
        dir.resolve_user("bob").await.unwrap()
    });
    assert_eq!(u.sam_account_name, "bob");
}

#[test]
fn wrong_password_is_bad_credentials() {
    let lab = Lab::load();
    let (_d, pw) = password_file("Definitely-Wrong-1");
    let text = config_text(
        &lab,
        &lab.ldaps_url,
        &lab.ca_file,
        "norights@phs.test",
        &pw,
        "",
        "",
    );
    let err = connect(&Config::parse(&text, Path::new("/")).unwrap()).unwrap_err();
    assert!(
        matches!(err, DirectoryError::BadCredentials { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("norights@phs.test") && !msg.contains("Definitely-Wrong-1"),
        "{msg}"
    );
}

#[test]
fn unusable_bind_accounts() {
    let lab = Lab::load();
    for (sam, problem) in [
        ("erin", AccountProblem::Disabled),
        ("grace", AccountProblem::MustChangePassword),
    ] {
        let acct = lab.account(sam);
        let (_d, pw) = password_file(&acct.password);
        let text = config_text(&lab, &lab.ldaps_url, &lab.ca_file, sam, &pw, "", "");
        let err = connect(&Config::parse(&text, Path::new("/")).unwrap()).unwrap_err();
        match &err {
            DirectoryError::AccountUnusable { problem: p, .. } => assert_eq!(*p, problem),
            other => panic!("{sam}: {other:?}"),
        }
        assert!(!err.to_string().contains(&acct.password));
    }
}

#[test]
fn expired_bind_account() {
    // An extra account of our own (prefix dirtest-), created if missing, expired now.
    let lab = Lab::load();
    let (sam, password) = ("dirtest-expired", "Dirtest-Expired-1");
    let smb_conf = lab.vars["PHSYNC_LAB_SMB_CONF"].clone();
    let samba_tool = |args: &[&str]| {
        std::process::Command::new("samba-tool")
            .args(args)
            .args(["-s", &smb_conf])
            .output()
            .expect("samba-tool (installed by scripts/ad-lab/lab.sh) must be on PATH")
    };
    let created = samba_tool(&["user", "create", sam, password]);
    let out = String::from_utf8_lossy(&created.stderr).to_string()
        + &String::from_utf8_lossy(&created.stdout);
    assert!(
        created.status.success() || out.contains("already exists"),
        "{out}"
    );
    let expired = samba_tool(&["user", "setexpiry", sam, "--days=0"]);
    assert!(
        expired.status.success(),
        "{}",
        String::from_utf8_lossy(&expired.stderr)
    );
    let (_d, pw) = password_file(password);
    let text = config_text(&lab, &lab.ldaps_url, &lab.ca_file, sam, &pw, "", "");
    let err = connect(&Config::parse(&text, Path::new("/")).unwrap()).unwrap_err();
    match &err {
        DirectoryError::AccountUnusable { problem, .. } => {
            assert_eq!(*problem, AccountProblem::AccountExpired)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unreachable_dc() {
    let lab = Lab::load();
    for url in [
        "ldaps://127.0.0.1:1",
        "ldaps://127.0.0.77",
        "ldap://127.0.0.1:2",
    ] {
        let text = config_text(
            &lab,
            url,
            &lab.ca_file,
            &lab.admin_upn,
            &lab.admin_password_file,
            "",
            "",
        );
        let config = Config::parse(&text, Path::new("/")).unwrap();
        let err = connect(&config).unwrap_err();
        assert!(
            matches!(err, DirectoryError::Unreachable { .. }),
            "{url}: {err:?}"
        );
        assert!(err.to_string().contains(url), "{err}");
    }
}

#[test]
fn silent_address_times_out_as_unreachable() {
    // TEST-NET-1 (RFC 5737): packets go nowhere (or the network is unreachable); either way
    // the connect must give up within the configured timeout, naming the URL.
    let lab = Lab::load();
    let url = "ldaps://192.0.2.1";
    let text = config_text(
        &lab,
        url,
        &lab.ca_file,
        &lab.admin_upn,
        &lab.admin_password_file,
        "",
        "",
    )
    .replace("timeout_seconds = 10", "timeout_seconds = 1");
    let config = Config::parse(&text, Path::new("/")).unwrap();
    let started = std::time::Instant::now();
    let err = connect(&config).unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, DirectoryError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains(url), "{err}");
}

#[test]
fn untrusted_certificate_is_a_tls_error() {
    let lab = Lab::load();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("other-ca.pem");
    let key = dir.path().join("other-ca.key");
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=phsync unrelated test CA",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&ca)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (installed by scripts/ad-lab/lab.sh) must be on PATH");
    assert!(status.success());
    for url in [lab.ldaps_url.clone(), lab.ldap_url.clone()] {
        // LDAPS, and StartTLS on ldap:// (the default for ldap:// URLs).
        let text = config_text(
            &lab,
            &url,
            &ca,
            &lab.admin_upn,
            &lab.admin_password_file,
            "",
            "",
        );
        let err = connect(&Config::parse(&text, Path::new("/")).unwrap()).unwrap_err();
        match &err {
            DirectoryError::Tls { ca_file, .. } => assert_eq!(Path::new(ca_file), ca),
            other => panic!("{url}: {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("other-ca.pem") && msg.contains(&url), "{msg}");
    }
    // The right CA, but a name the certificate does not carry (SANs: 127.0.0.1, dc1.phs.test).
    let text = config_text(
        &lab,
        "ldaps://localhost",
        &lab.ca_file,
        &lab.admin_upn,
        &lab.admin_password_file,
        "",
        "",
    );
    let err = connect(&Config::parse(&text, Path::new("/")).unwrap()).unwrap_err();
    assert!(matches!(err, DirectoryError::Tls { .. }), "{err:?}");
    // A CA file that is not PEM.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let text = config_text(
        &lab,
        &lab.ldaps_url,
        &junk,
        &lab.admin_upn,
        &lab.admin_password_file,
        "",
        "",
    );
    let err = connect(&Config::parse(&text, Path::new("/")).unwrap()).unwrap_err();
    assert!(matches!(err, DirectoryError::CaFile { .. }), "{err:?}");
}

#[test]
fn plain_ldap_needs_allow_plain_ldap() {
    let lab = Lab::load();
    let text = config_text(
        &lab,
        &lab.ldap_url,
        &lab.ca_file,
        &lab.admin_upn,
        &lab.admin_password_file,
        "starttls = false",
        "",
    );
    let err = Config::parse(&text, Path::new("/")).unwrap_err();
    assert!(err.to_string().contains("allow_plain_ldap"), "{err}");
    // Allowed explicitly: the lab permits simple binds on plain LDAP.
    let text = config_text(
        &lab,
        &lab.ldap_url,
        &lab.ca_file,
        &lab.admin_upn,
        &lab.admin_password_file,
        "starttls = false\nallow_plain_ldap = true",
        "",
    );
    let dir = connect(&Config::parse(&text, Path::new("/")).unwrap()).unwrap();
    assert_eq!(dir.root_dse().default_naming_context, lab.base_dn);
}

#[test]
fn debug_output_has_no_password() {
    let lab = Lab::load();
    let config = admin_config(&lab, "");
    let password = std::fs::read_to_string(&lab.admin_password_file).unwrap();
    let dir = connect(&config).unwrap();
    assert!(!format!("{config:?} {dir:?}").contains(password.trim()));
}

/// Issue 16: an incremental cycle learns the scope's changes from uSNChanged (and tombstones)
/// instead of listing the scope. In an OU of its own: other tests change users elsewhere.
#[test]
fn scope_changes_come_from_change_tracking() {
    let ou = phsync_testkit::ad::TestOu::new("i16chg");
    let sams: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|x| format!("chg{x}{}", ou.suffix))
        .collect();
    for s in &sams {
        ou.add_user(s, "Change-Track-1x");
    }
    let lab = ou.lab.clone();
    let config = admin_config(&lab, &format!("scope_ous = [{}]", toml_str(&ou.dn)));
    let scope = config.sync.scope();
    let changes_since = |usn: i64, scope: &phsync_directory::UserScope| {
        block_on(async {
            let mut dir = phsync_testkit::lab::connect(&config.source).await.unwrap();
            let changes = dir.scope_changes(scope, usn).await.unwrap();
            dir.close().await;
            changes
        })
    };
    let (mark, guids) = block_on(async {
        let mut dir = phsync_testkit::lab::connect(&config.source).await.unwrap();
        let mark = dir.root_dse().highest_committed_usn;
        let users = dir.users(&scope).await.unwrap();
        dir.close().await;
        let guid = |s: &str| {
            users
                .iter()
                .find(|u| u.sam_account_name == s)
                .unwrap()
                .object_guid
        };
        (mark, sams.iter().map(|s| guid(s)).collect::<Vec<_>>())
    });
    let ours = |g: &phsync_directory::Guid| guids.contains(g);

    let none = changes_since(mark, &scope).unwrap();
    assert!(none.in_scope.is_empty(), "{:?}", none.in_scope);
    assert!(!none.out_of_scope.iter().any(ours));

    // a: a new password (in scope, changed); b: disabled (left); c: deleted (left).
    ou.set_password(&sams[0], "Change-Track-2a");
    ou.set_uac(&sams[1], 514);
    ou.ldif("ldapdelete", &format!("{}\n", ou.user_dn(&sams[2])));
    let changed = changes_since(mark, &scope).unwrap();
    let names: Vec<&str> = changed
        .in_scope
        .iter()
        .map(|u| u.sam_account_name.as_str())
        .collect();
    assert_eq!(names, [sams[0].as_str()]);
    let left: BTreeSet<_> = changed.out_of_scope.iter().filter(|g| ours(g)).collect();
    assert_eq!(
        left,
        [&guids[1], &guids[2]].into_iter().collect(),
        "disabled and deleted"
    );

    // Group scopes change with memberships, which touch no user: change tracking declines.
    let groups = phsync_directory::UserScope {
        groups: vec!["PHS-Sync-Users".into()],
        ..scope.clone()
    };
    assert_eq!(changes_since(mark, &groups), None);
}
