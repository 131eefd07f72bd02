//! End to end: the Samba DC → sync engines (agents) → `phsync cloud serve` replicas over
//! HTTPS (self-made CA) → PostgreSQL, and users signing in over HTTPS.

use std::path::PathBuf;

use phsync_engine::Engine;
use phsync_tenant::{CloudTenant, SignInStatus, Timestamp, TokenRole};
use phsync_testkit::service::{ServiceLab, ServiceProcess};
use phsync_testkit::sync_fixture::SyncFixture;

struct Agents {
    f: SyncFixture,
    lab: ServiceLab,
    replicas: Vec<ServiceProcess>,
    configs: Vec<PathBuf>,
}

/// `n` agents, agent k talking to replica k % 2, all with tokens of the DC's source.
fn agents(tag: &str, n: usize) -> Agents {
    let f = SyncFixture::new(tag, "");
    let lab = ServiceLab::new(tag);
    let replicas = vec![lab.serve(), lab.serve()];
    let source = f.ou.lab.realm.to_lowercase();
    let mut configs = Vec::new();
    for k in 0..n {
        let token = lab.token(
            TokenRole::Agent,
            &format!("agent-{k}"),
            Some(&source),
            &format!("agent{k}.token"),
        );
        let cloud = format!(
            "tenant = \"{}\"\ntoken_file = \"{}\"\nca_file = \"{}\"",
            replicas[k % 2].url,
            token.display(),
            lab.pki.ca_file.display()
        );
        let path = f.dir.0.join(format!("agent{k}.toml"));
        f.write_config_to(&path, "", &cloud, &format!("state-{k}"));
        configs.push(path);
    }
    Agents {
        f,
        lab,
        replicas,
        configs,
    }
}

impl Agents {
    fn engine(&self, k: usize) -> Engine {
        Engine::open(&self.configs[k]).unwrap_or_else(|e| panic!("engine {k}: {e}"))
    }

    /// An administrator's view through replica `r`.
    fn admin(&self, r: usize) -> Box<dyn CloudTenant> {
        self.lab.admin(&self.replicas[r])
    }

    fn sign_in(&self, r: usize, sam: &str, password: &str) -> SignInStatus {
        let pw: Vec<u16> = password.encode_utf16().collect();
        self.admin(r)
            .sign_in(&self.f.ou.upn(sam), &pw)
            .unwrap()
            .result
    }

    /// Per user, in commit order, the change times the tenant applied must only go up.
    fn assert_no_stale_win(&self) {
        let audit = self.admin(0).audit_log(10_000).unwrap();
        let mut last = std::collections::HashMap::new();
        for a in audit
            .iter()
            .rev()
            .filter(|a| a.action == "password.sync" && a.outcome == "applied")
        {
            let detail = a.detail.as_deref().unwrap();
            let at = detail
                .trim_start_matches("on-prem change at ")
                .split(',')
                .next()
                .unwrap();
            let at = Timestamp::parse_rfc3339(at).unwrap();
            let anchor = a.source_anchor.clone().unwrap();
            if let Some(prev) = last.insert(anchor.clone(), at) {
                assert!(at > prev, "{anchor}: {at} applied after {prev}");
            }
        }
    }
}

#[test]
fn two_agents_and_two_replicas_sync_the_dc_into_postgresql() {
    let a = agents("e2e", 2);
    let users: Vec<String> = (0..4).map(|i| a.f.sam(&format!("e2e{i}"))).collect();
    for (i, u) in users.iter().enumerate() {
        a.f.ou.add_user(u, &format!("First-Passw0rd-{i}"));
    }
    // Agent 0 alone: a full sync over HTTPS, visible through the other replica.
    let report = a.engine(0).cycle(true, &mut |_, _, _| {}).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.applied, 4, "{report:?}");
    for (i, u) in users.iter().enumerate() {
        assert_eq!(
            a.sign_in(1, u, &format!("First-Passw0rd-{i}")),
            SignInStatus::Success
        );
        assert_eq!(
            a.sign_in(0, u, "Not-The-Passw0rd-1"),
            SignInStatus::InvalidCredentials
        );
    }

    // Both agents race (agent 1's first cycle is a full sync) through both replicas, over
    // two rounds of on-prem changes.
    for round in 1..=2 {
        for (i, u) in users
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == round % 2 || round == 2)
        {
            a.f.ou
                .set_password(u, &format!("Round{round}-Passw0rd-{i}"));
        }
        let handles: Vec<_> = (0..2)
            .map(|k| {
                let mut engine = a.engine(k);
                std::thread::spawn(move || engine.cycle(false, &mut |_, _, _| {}).unwrap())
            })
            .collect();
        for h in handles {
            let r = h.join().unwrap();
            assert!(r.ok && r.failed == 0, "{r:?}");
        }
        for (i, u) in users.iter().enumerate() {
            let current = if round == 2 || i % 2 == round % 2 {
                format!("Round{round}-Passw0rd-{i}")
            } else {
                format!("First-Passw0rd-{i}")
            };
            assert_eq!(
                a.sign_in(i % 2, u, &current),
                SignInStatus::Success,
                "{u} round {round}"
            );
            if current != format!("First-Passw0rd-{i}") {
                assert_eq!(
                    a.sign_in(0, u, &format!("First-Passw0rd-{i}")),
                    SignInStatus::InvalidCredentials
                );
            }
        }
    }
    a.assert_no_stale_win();
    // Both agents wrote; every synced user belongs to the DC's source.
    let audit = a.admin(0).audit_log(10_000).unwrap();
    for k in 0..2 {
        assert!(
            audit.iter().any(|e| e.actor == format!("agent:agent-{k}")),
            "agent {k} never wrote"
        );
    }
    let status = a.admin(1).status().unwrap();
    assert_eq!(status.counts.synced_users, 4);
    assert_eq!(status.counts.credentials, 4);
}

#[test]
fn a_user_the_tenant_lost_is_provisioned_again_and_its_password_retried() {
    let a = agents("e2e-lost", 1);
    let users: Vec<String> = (0..3).map(|i| a.f.sam(&format!("lost{i}"))).collect();
    for u in &users {
        a.f.ou.add_user(u, "Before-Passw0rd-1");
    }
    assert_eq!(
        a.engine(0).cycle(true, &mut |_, _, _| {}).unwrap().applied,
        3
    );
    for (i, u) in users.iter().enumerate() {
        a.f.ou.set_password(u, &format!("After-Passw0rd-{i}"));
    }
    // One credential per tenant call; the last user is deleted in the cloud after the
    // cycle provisioned it and before its credential is sent (after the first credential).
    let lost = a.f.ou.upn(&users[2]);
    let mut engine = a.engine(0);
    engine.set_credential_batch(1);
    let admin = a.admin(0);
    let mut deleted = false;
    let report = engine
        .cycle(false, &mut |stage, done, _| {
            if stage == "credentials" && done == 1 && !deleted {
                admin.delete_user(&lost).unwrap();
                deleted = true;
            }
        })
        .unwrap();
    assert!(deleted);
    assert_eq!(report.applied, 3, "{report:?}");

    assert_eq!(
        a.sign_in(0, &users[2], "After-Passw0rd-2"),
        SignInStatus::Success
    );
    let audit = a.admin(0).audit_log(1000).unwrap();
    let mut events: Vec<(&str, &str)> = audit
        .iter()
        .rev()
        .filter(|e| e.user_principal_name.as_deref() == Some(lost.as_str()))
        .map(|e| (e.action.as_str(), e.outcome.as_str()))
        .collect();
    events.retain(|e| e.0 != "sign_in");
    assert_eq!(
        &events[events.len() - 3..],
        &[
            ("user.delete", "deleted"),
            ("user.sync", "created"),
            ("password.sync", "applied")
        ],
        "{events:?}"
    );
}

#[test]
fn an_agent_cannot_change_the_tenant_policy_and_says_so() {
    let a = agents("e2e-policy", 1);
    let cloud = std::fs::read_to_string(&a.configs[0]).unwrap();
    let cloud = cloud
        .split("[cloud]")
        .nth(1)
        .unwrap()
        .split("[state]")
        .next()
        .unwrap()
        .trim()
        .to_string();
    a.f.write_config_to(
        &a.configs[0],
        "apply_cloud_password_policy = true",
        &cloud,
        "state-0",
    );
    // The engine opens and syncs; the tenant keeps its administrators' setting.
    let user = a.f.sam("policy0");
    a.f.ou.add_user(&user, "Policy-Passw0rd-1");
    let report = a.engine(0).cycle(true, &mut |_, _, _| {}).unwrap();
    assert_eq!(report.applied, 1, "{report:?}");
    assert!(
        !a.admin(0)
            .settings()
            .unwrap()
            .apply_cloud_password_policy_to_synced
    );
    let events = std::fs::read_to_string(a.f.dir.0.join("state-0/events.jsonl")).unwrap();
    let warning = events
        .lines()
        .find(|l| l.contains("only its administrators can change it"))
        .unwrap_or_else(|| panic!("no policy warning in {events}"));
    assert!(warning.contains("\"level\":\"warning\""), "{warning}");
}
