//! `phsync cloud serve` over HTTPS (self-made CA) into PostgreSQL: the API through the
//! remote tenant client, scoping of agent tokens, racing agents and replicas, 4xx errors,
//! and the OpenAPI document against what the service really answers.

use std::sync::Arc;

use phsync_tenant::{
    self as cloud, CloudError, CloudTenant, CredentialOutcome, SignInStatus, SyncedCredential,
    SyncedUserSpec, TenantTarget, Timestamp, TokenRole,
};
use phsync_testkit::service::{ServiceLab, ServiceProcess};
use phsync_testkit::tenant::{digest_of, utf16};
use serde_json::Value;

fn spec(anchor: &str, upn: &str) -> SyncedUserSpec {
    SyncedUserSpec {
        source_anchor: anchor.into(),
        user_principal_name: upn.into(),
        display_name: None,
        enabled: true,
    }
}

fn cred(anchor: &str, password: &str, changed_at: Timestamp) -> SyncedCredential {
    SyncedCredential {
        source_anchor: anchor.into(),
        digest: digest_of(password),
        changed_at,
        force_change_at_next_sign_in: false,
        leak_check: None,
    }
}

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_767_225_600_000_000 + seconds * 1_000_000)
}

/// Raw HTTPS for what the typed client never sends.
struct Raw {
    agent: ureq::Agent,
    url: String,
}

struct Reply {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: Value,
}

impl Raw {
    fn new(lab: &ServiceLab, service: &ServiceProcess) -> Self {
        let pem = std::fs::read(&lab.pki.ca_file).unwrap();
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|i| match i.unwrap() {
                ureq::tls::PemItem::Certificate(c) => Some(c),
                _ => None,
            })
            .collect();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .build()
            .into();
        Raw {
            agent,
            url: service.url.clone(),
        }
    }

    fn reply(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut r = r.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.body_mut().read_to_string().unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut req = self.agent.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        Self::reply(req.call())
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> Reply {
        let url = format!("{}{path}", self.url);
        let mut req = match method {
            "PUT" => self.agent.put(&url),
            _ => self.agent.post(&url),
        };
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        Self::reply(req.content_type(content_type).send(body))
    }

    /// Any method, no body.
    fn call(&self, method: &str, path: &str, token: Option<&str>) -> Reply {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        Self::reply(self.agent.run(req.body(()).unwrap()))
    }

    fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.send(
            "POST",
            path,
            token,
            "application/json",
            body.to_string().as_bytes(),
        )
    }
}

fn read_token(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

fn assert_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["error"]["code"], code, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        r.body
    );
}

#[test]
fn the_remote_tenant_works_like_the_embedded_one() {
    let lab = ServiceLab::new("svc-api");
    let service = lab.serve();
    let admin = lab.admin(&service);
    let agent_token = lab.token(TokenRole::Agent, "agent-1", Some("phs.test"), "agent.token");
    let agent = lab.client(&service, &agent_token);

    // Agents provision and send digests; the stale rule holds over HTTPS.
    assert_eq!(
        agent
            .provision_synced_users(&[
                spec("QUFBQQ==", "ann@phs.test"),
                spec("QkJCQg==", "ben@phs.test")
            ])
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect::<Vec<_>>(),
        vec![
            cloud::ProvisionOutcome::Created,
            cloud::ProvisionOutcome::Created
        ]
    );
    let results = agent
        .apply_synced_credentials(&[
            cred("QUFBQQ==", "Ann-Newer-1", t(20)),
            cred("QUFBQQ==", "Ann-Older-1", t(10)),
            cred("QkJCQg==", "Ben-Only-1", t(5)),
            cred("Tk9ORQ==", "Nobody-1", t(5)),
        ])
        .unwrap();
    assert_eq!(results[0].as_ref().unwrap(), &CredentialOutcome::Applied);
    assert_eq!(
        results[1].as_ref().unwrap(),
        &CredentialOutcome::Stale {
            current_changed_at: t(20)
        }
    );
    assert_eq!(results[2].as_ref().unwrap(), &CredentialOutcome::Applied);
    assert!(matches!(&results[3], Err(CloudError::AnchorNotFound(a)) if a == "Tk9ORQ=="));

    // Users sign in over HTTPS with the synced password, and only with it.
    let r = admin
        .sign_in("ann@phs.test", &utf16("Ann-Newer-1"))
        .unwrap();
    assert_eq!(r.result, SignInStatus::Success);
    let session = r.session_token.unwrap();
    assert_eq!(
        admin
            .sign_in("ann@phs.test", &utf16("Ann-Older-1"))
            .unwrap()
            .result,
        SignInStatus::InvalidCredentials
    );
    assert_eq!(
        admin
            .validate_session(&session)
            .unwrap()
            .unwrap()
            .user_principal_name,
        "ann@phs.test"
    );
    assert!(admin.validate_session("not-a-session").unwrap().is_none());

    // Administrators: reset (policy applies), cloud users, change, delete, audit, status.
    assert!(matches!(
        admin.set_password("ann@phs.test", &utf16("weak"), false),
        Err(CloudError::PolicyViolation(p)) if p.len() >= 2
    ));
    admin
        .set_password("ann@phs.test", &utf16("Reset-By-Admin-7"), true)
        .unwrap();
    assert_eq!(
        admin
            .sign_in("ann@phs.test", &utf16("Reset-By-Admin-7"))
            .unwrap()
            .result,
        SignInStatus::MustChangePassword
    );
    let changed = admin
        .change_password(
            "ann@phs.test",
            &utf16("Reset-By-Admin-7"),
            &utf16("Own-Choice-88"),
        )
        .unwrap();
    assert_eq!(changed.result, SignInStatus::Success);
    admin
        .add_cloud_user("cloudy@phs.test", Some("Cloudy"))
        .unwrap();
    assert!(matches!(
        admin.add_cloud_user("cloudy@phs.test", None),
        Err(CloudError::UpnConflict(_))
    ));
    assert!(matches!(
        admin.set_password("ghost@phs.test", &utf16("Ghost-Passw0rd"), false),
        Err(CloudError::UserNotFound(_))
    ));
    assert!(admin.user("ghost@phs.test").unwrap().is_none());
    assert_eq!(admin.users().unwrap().len(), 3);
    admin.delete_user("cloudy@phs.test").unwrap();
    assert!(matches!(
        admin.delete_user("cloudy@phs.test"),
        Err(CloudError::UserNotFound(_))
    ));
    let audit = admin.audit_log(100).unwrap();
    assert!(audit
        .iter()
        .any(|a| a.actor == "agent:agent-1" && a.action == "password.sync"));
    assert!(audit
        .iter()
        .any(|a| a.actor == "admin:test-admin" && a.action == "password.reset"));
    assert!(audit.iter().any(|a| a.action == "user.delete"));
    let status = admin.status().unwrap();
    assert!(status.store.starts_with("postgresql"), "{}", status.store);
    assert_eq!(status.counts.users, 2);
    let mut settings = admin.settings().unwrap();
    settings.lockout_threshold = 7;
    admin.update_settings(&settings).unwrap();
    assert_eq!(agent.settings().unwrap().lockout_threshold, 7);
    // Agents may not do what administrators do.
    settings.lockout_threshold = 3;
    assert!(matches!(
        agent.update_settings(&settings),
        Err(CloudError::Forbidden(_))
    ));
    assert!(matches!(agent.audit_log(5), Err(CloudError::Forbidden(_))));
    assert!(matches!(
        agent.set_password("ben@phs.test", &utf16("Agent-Reset-99"), false),
        Err(CloudError::Forbidden(_))
    ));
    assert!(matches!(
        agent.delete_user("ben@phs.test"),
        Err(CloudError::Forbidden(_))
    ));

    // Leaked credentials over HTTPS: the agent sends its verdict with the credential, the
    // service keeps the mark (and the change-required policy), administrators see it, and
    // an on-prem change to a clean password clears it.
    let mut leaked = cred("QkJCQg==", "Ben-Leaked-1", t(30));
    leaked.leak_check = Some(cloud::LeakCheck::leaked(Some(9), true));
    agent.apply_synced_credential(&leaked).unwrap();
    let risks = admin.risks().unwrap();
    assert_eq!(risks.len(), 1);
    assert_eq!(
        (risks[0].user_principal_name.as_str(), risks[0].breach_count),
        ("ben@phs.test", Some(9))
    );
    let ben = admin.user("ben@phs.test").unwrap().unwrap();
    assert_eq!(ben.risks.len(), 1);
    assert_eq!(
        admin
            .sign_in("ben@phs.test", &utf16("Ben-Leaked-1"))
            .unwrap()
            .result,
        SignInStatus::MustChangePassword
    );
    assert!(matches!(agent.risks(), Err(CloudError::Forbidden(_))));
    let mut clean = cred("QkJCQg==", "Ben-Clean-2", t(40));
    clean.leak_check = Some(cloud::LeakCheck::clean());
    agent.apply_synced_credential(&clean).unwrap();
    assert!(admin.risks().unwrap().is_empty());
    let audit = admin.audit_log(10).unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == cloud::LEAKED_ACTION)
            .map(|a| a.outcome.as_str())
            .collect::<Vec<_>>(),
        ["cleared", "marked"]
    );
    assert_eq!(service.stop().code(), Some(0), "SIGTERM: a clean exit");
}

#[test]
fn an_agent_sees_and_writes_only_its_own_source() {
    let lab = ServiceLab::new("svc-scope");
    let service = lab.serve();
    let a = lab.client(
        &service,
        &lab.token(TokenRole::Agent, "a", Some("a.test"), "a.token"),
    );
    let b = lab.client(
        &service,
        &lab.token(TokenRole::Agent, "b", Some("b.test"), "b.token"),
    );
    a.provision_synced_user(&spec("QUFB", "x@a.test")).unwrap();
    a.apply_synced_credential(&cred("QUFB", "Source-A-Pass1", t(1)))
        .unwrap();
    b.provision_synced_user(&spec("QkJC", "y@b.test")).unwrap();

    assert!(matches!(
        b.provision_synced_user(&spec("QUFB", "hijack@b.test")),
        Err(CloudError::AnchorOwned(_))
    ));
    // Another source's anchor answers as if it did not exist.
    assert!(matches!(
        b.apply_synced_credential(&cred("QUFB", "Hijacked-Pass1", t(99))),
        Err(CloudError::AnchorNotFound(_))
    ));
    assert!(b.user_by_anchor("QUFB").unwrap().is_none());
    let seen: Vec<String> = b
        .users()
        .unwrap()
        .into_iter()
        .map(|u| u.user_principal_name)
        .collect();
    assert_eq!(seen, vec!["y@b.test".to_string()]);
    // x@a.test still has A's password.
    let admin = lab.admin(&service);
    assert_eq!(
        admin
            .sign_in("x@a.test", &utf16("Source-A-Pass1"))
            .unwrap()
            .result,
        SignInStatus::Success
    );
    assert_eq!(admin.users().unwrap().len(), 2);
}

#[test]
fn bad_tokens_oversized_and_malformed_requests_get_clear_4xx() {
    let lab = ServiceLab::with_settings("svc-4xx", "max_body_bytes = 65536");
    let service = lab.serve();
    let raw = Raw::new(&lab, &service);
    let admin = read_token(&lab.admin_token);
    let agent_file = lab.token(TokenRole::Agent, "agent", Some("phs.test"), "agent.token");
    let agent = read_token(&agent_file);

    // Tokens: none, garbage, a right id with a wrong secret, revoked, wrong role.
    let r = raw.get("/v1/users", None);
    assert_error(&r, 401, "unauthorized");
    assert!(r.headers.get("www-authenticate").is_some());
    assert_error(&raw.get("/v1/users", Some("garbage")), 401, "unauthorized");
    let forged = format!("{}_{}", &admin[..20], "A".repeat(43));
    assert_error(&raw.get("/v1/users", Some(&forged)), 401, "unauthorized");
    assert_error(&raw.get("/v1/users", Some(&agent)), 403, "forbidden");
    assert_error(
        &raw.post(
            "/v1/sync/users",
            Some(&admin),
            &serde_json::json!({"users": []}),
        ),
        403,
        "forbidden",
    );
    let store = cloud::open_store(&lab.db.url).unwrap();
    let id = agent.split('_').nth(1).unwrap();
    phsync_service::tokens::revoke(store.as_ref(), id).unwrap();
    assert_error(
        &raw.get("/v1/sync/users", Some(&agent)),
        401,
        "unauthorized",
    );
    assert!(matches!(
        cloud::open_target(
            &TenantTarget {
                location: service.url.clone(),
                token_file: Some(agent_file),
                ca_file: Some(lab.pki.ca_file.clone()),
            },
            "t"
        ),
        Err(CloudError::Unauthorized(_))
    ));
    let agent_file = lab.token(TokenRole::Agent, "agent2", Some("phs.test"), "agent2.token");
    let agent = read_token(&agent_file);

    // Bodies: not JSON, malformed, wrong shapes, too large, too many items.
    let r = raw.send("POST", "/v1/sign-in", None, "text/plain", b"hello");
    assert_error(&r, 415, "unsupported_media_type");
    let r = raw.send(
        "POST",
        "/v1/sign-in",
        None,
        "application/json",
        b"{\"user_principal_name\":",
    );
    assert_error(&r, 400, "invalid_request");
    let r = raw.post(
        "/v1/sign-in",
        None,
        &serde_json::json!({"user_principal_name": "a@b"}),
    );
    assert_error(&r, 400, "invalid_request");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("password"));
    let r = raw.post(
        "/v1/users/x@phs.test/password",
        Some(&admin),
        &serde_json::json!({"password": "Fine-Passw0rd", "force_change_at_next_sign_in": "S3cret-In-Wrong-Field"}),
    );
    assert_error(&r, 400, "invalid_request");
    assert!(
        !r.body.to_string().contains("S3cret-In-Wrong-Field"),
        "{}",
        r.body
    );
    let r = raw.post(
        "/v1/users",
        Some(&admin),
        &serde_json::json!({"user_principal_name": "a@b", "extra": 1}),
    );
    assert_error(&r, 400, "invalid_request");
    let big = serde_json::json!({"user_principal_name": "a@b", "password": "x".repeat(70_000)});
    assert_error(
        &raw.post("/v1/sign-in", None, &big),
        413,
        "payload_too_large",
    );
    let users: Vec<Value> = (0..1001)
        .map(|i| serde_json::json!({"source_anchor": format!("a{i}"), "user_principal_name": format!("u{i}@x"), "enabled": true}))
        .collect();
    let lab_big = serde_json::json!({ "users": users });
    let r = raw.post("/v1/sync/users", Some(&agent), &lab_big);
    assert!(r.status == 413, "{}", r.status);
    let r = raw.post(
        "/v1/sync/credentials",
        Some(&agent),
        &serde_json::json!({"credentials": [{"source_anchor": "QUFB", "digest": "v1;nonsense", "changed_at": "2026-01-01T00:00:00Z"}]}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["results"][0]["error"]["code"], "malformed_digest",
        "{}",
        r.body
    );
    let r = raw.post(
        "/v1/sync/credentials",
        Some(&agent),
        &serde_json::json!({"credentials": [{"source_anchor": "QUFB", "digest": "x", "changed_at": "yesterday"}]}),
    );
    assert_error(&r, 400, "invalid_request");
    assert_error(
        &raw.get("/v1/audit?limit=0", Some(&admin)),
        400,
        "invalid_request",
    );
    assert_error(
        &raw.get("/v1/audit?limit=x", Some(&admin)),
        400,
        "invalid_request",
    );

    // Routes and methods that do not exist.
    assert_error(&raw.get("/v2/anything", None), 404, "not_found");
    assert_error(&raw.get("/v1/sign-in", None), 405, "method_not_allowed");
    assert_error(
        &raw.get("/v1/users/nobody@phs.test", Some(&admin)),
        404,
        "user_not_found",
    );

    // Nothing above reached the store as a write.
    let admin_client = lab.admin(&service);
    assert_eq!(admin_client.status().unwrap().counts.users, 0);
}

#[test]
fn sign_in_is_throttled_per_user() {
    let lab = ServiceLab::with_settings("svc-throttle", "sign_in_per_user_per_minute = 3");
    let service = lab.serve();
    let raw = Raw::new(&lab, &service);
    let attempt = |upn: &str| {
        raw.post(
            "/v1/sign-in",
            None,
            &serde_json::json!({"user_principal_name": upn, "password": "Wrong-Passw0rd"}),
        )
    };
    for _ in 0..3 {
        let r = attempt("target@phs.test");
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.body["result"], "invalid_credentials");
    }
    let r = attempt("TARGET@phs.test");
    assert_error(&r, 429, "too_many_requests");
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(
        attempt("other@phs.test").status,
        401,
        "another user is not throttled"
    );
    let admin = lab.admin(&service);
    assert!(matches!(
        admin.sign_in("target@phs.test", &utf16("Wrong-Passw0rd")),
        Err(CloudError::Throttled { .. })
    ));
}

#[test]
fn tls_is_verified_and_plain_http_is_loopback_only() {
    let lab = ServiceLab::new("svc-tls");
    let service = lab.serve();
    let wrong_ca = cloud::open_target(
        &TenantTarget {
            location: service.url.clone(),
            token_file: Some(lab.admin_token.clone()),
            ca_file: Some(lab.pki.other_ca_file.clone()),
        },
        "t",
    );
    match wrong_ca {
        Err(CloudError::Unreachable(m)) => assert!(m.contains("certificate"), "{m}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a service with a certificate from another CA was trusted"),
    }
    // A token file others can read is refused before anything is sent.
    let loose = lab.dir.0.join("loose.token");
    std::fs::copy(&lab.admin_token, &loose).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let err = cloud::open_target(
        &TenantTarget {
            location: service.url.clone(),
            token_file: Some(loose),
            ca_file: Some(lab.pki.ca_file.clone()),
        },
        "t",
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("chmod 600"), "{err}");
    // http:// to a service speaking TLS, and plain http to a non-loopback host.
    assert!(cloud::open_target(
        &TenantTarget {
            location: "http://example.com".into(),
            token_file: Some(lab.admin_token.clone()),
            ca_file: None,
        },
        "t"
    )
    .is_err());

    // --insecure-http serves plain HTTP on loopback ...
    let plain = ServiceProcess::start(&lab.config, &["--insecure-http"]);
    assert!(plain.url.starts_with("http://127.0.0.1:"), "{}", plain.url);
    let admin = cloud::open_target(
        &TenantTarget {
            location: plain.url.clone(),
            token_file: Some(lab.admin_token.clone()),
            ca_file: None,
        },
        "t",
    )
    .unwrap();
    assert_eq!(admin.users().unwrap().len(), 0);
    // ... and nowhere else; without TLS files the service refuses to start.
    let open_config = lab.dir.0.join("open.toml");
    std::fs::write(
        &open_config,
        format!(
            "[service]\nlisten = \"0.0.0.0:0\"\nstore = \"{}\"\n",
            lab.db.url
        ),
    )
    .unwrap();
    for args in [&["--insecure-http"][..], &[][..]] {
        let out = std::process::Command::new(phsync_testkit::phsync_bin())
            .args(["cloud", "serve", "--config"])
            .arg(&open_config)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("loopback") || err.contains("tls_cert"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[test]
fn racing_agents_and_replicas_never_apply_an_older_credential() {
    let lab = ServiceLab::new("svc-race");
    let replicas = [lab.serve(), lab.serve()];
    let tokens = [
        lab.token(TokenRole::Agent, "agent-a", Some("phs.test"), "a.token"),
        lab.token(TokenRole::Agent, "agent-b", Some("phs.test"), "b.token"),
    ];
    const USERS: usize = 12;
    const CHANGES: i64 = 24;
    let anchors: Vec<String> = (0..USERS).map(|u| format!("cmFjZS0{u:02}")).collect();
    // Every digest once, shared by all racers (PBKDF2 is the slow part).
    let digests: Arc<Vec<Vec<zeroize::Zeroizing<String>>>> = Arc::new(
        (0..USERS)
            .map(|u| {
                (0..CHANGES)
                    .map(|c| digest_of(&format!("Race-{u}-{c}")))
                    .collect()
            })
            .collect(),
    );
    let mut threads = Vec::new();
    for (k, (replica, token)) in [(0, 0), (0, 1), (1, 0), (1, 1)].into_iter().enumerate() {
        let client = lab.client(&replicas[replica], &tokens[token]);
        let anchors = anchors.clone();
        let digests = digests.clone();
        threads.push(std::thread::spawn(move || {
            let specs: Vec<_> = anchors
                .iter()
                .enumerate()
                .map(|(u, a)| spec(a, &format!("race{u}@phs.test")))
                .collect();
            for r in client.provision_synced_users(&specs).unwrap() {
                r.unwrap();
            }
            // Each racer sends every change of every user, in its own order, in batches.
            let mut order: Vec<(usize, i64)> = (0..USERS)
                .flat_map(|u| (0..CHANGES).map(move |c| (u, c)))
                .collect();
            let n = order.len();
            for i in 0..n {
                order.swap(i, (i * 7919 + k * 104_729 + 13) % n);
            }
            for batch in order.chunks(37) {
                let creds: Vec<_> = batch
                    .iter()
                    .map(|&(u, c)| SyncedCredential {
                        source_anchor: anchors[u].clone(),
                        digest: digests[u][c as usize].clone(),
                        changed_at: t(c),
                        force_change_at_next_sign_in: false,
                        leak_check: None,
                    })
                    .collect();
                for r in client.apply_synced_credentials(&creds).unwrap() {
                    r.unwrap();
                }
            }
        }));
    }
    threads.into_iter().for_each(|h| h.join().unwrap());

    let admin = lab.admin(&replicas[0]);
    let users = admin.users().unwrap();
    assert_eq!(users.len(), USERS, "each user created once");
    for (u, anchor) in anchors.iter().enumerate() {
        let user = admin.user_by_anchor_admin(anchor, &users);
        assert_eq!(user.password.as_ref().unwrap().changed_at, t(CHANGES - 1));
        let upn = format!("race{u}@phs.test");
        assert_eq!(
            admin
                .sign_in(&upn, &utf16(&format!("Race-{u}-{}", CHANGES - 1)))
                .unwrap()
                .result,
            SignInStatus::Success
        );
    }
    // In commit order, every user's applied change times only ever go up.
    let audit = admin.audit_log(10_000).unwrap();
    let mut last: std::collections::HashMap<String, String> = Default::default();
    let mut applied = 0;
    for a in audit
        .iter()
        .rev()
        .filter(|a| a.action == "password.sync" && a.outcome == "applied")
    {
        applied += 1;
        let at = a.detail.as_ref().unwrap().clone();
        let anchor = a.source_anchor.clone().unwrap();
        if let Some(prev) = last.get(&anchor) {
            let (p, n) = (
                Timestamp::parse_rfc3339(prev.trim_start_matches("on-prem change at ")).unwrap(),
                Timestamp::parse_rfc3339(at.trim_start_matches("on-prem change at ")).unwrap(),
            );
            assert!(n > p, "{anchor}: {at} applied after {prev}");
        }
        last.insert(anchor, at);
    }
    let stale = audit.iter().filter(|a| a.outcome == "stale").count();
    assert_eq!(
        applied + stale,
        4 * USERS * CHANGES as usize,
        "every request answered once"
    );
}

trait FindByAnchor {
    fn user_by_anchor_admin(&self, anchor: &str, users: &[cloud::User]) -> cloud::User;
}

impl FindByAnchor for Box<dyn CloudTenant> {
    fn user_by_anchor_admin(&self, anchor: &str, users: &[cloud::User]) -> cloud::User {
        users
            .iter()
            .find(|u| u.source_anchor.as_deref() == Some(anchor))
            .unwrap_or_else(|| panic!("no user with anchor {anchor}"))
            .clone()
    }
}

/// Every route the service has is in the document, and what the service answers on each
/// (successes and errors) matches the document's schemas strictly.
#[test]
fn the_openapi_document_is_true() {
    use phsync_testkit::openapi::Document;
    let doc = Document::published();
    let routes: Vec<(String, String)> = phsync_service::routes()
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        doc.operations(),
        routes,
        "the document lists exactly the routes the router is built from"
    );

    let lab = ServiceLab::new("svc-openapi");
    let service = lab.serve();
    let raw = Raw::new(&lab, &service);
    let admin = read_token(&lab.admin_token);
    let agent = read_token(&lab.token(TokenRole::Agent, "agent", Some("phs.test"), "agent.token"));
    let served = raw.get("/openapi.json", None);
    assert_eq!(served.status, 200);
    assert_eq!(served.body, doc.0, "the service publishes this document");
    assert_eq!(raw.get("/.well-known/openapi.json", None).body, doc.0);

    // Both ways against the live router, whatever the route list says: every documented
    // operation is routed (not the 404/405 fallback), every other method on a documented
    // path answers 405, and a path the document does not have answers 404.
    let documented = doc.operations();
    let paths: std::collections::BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        let concrete = path.replace("{upn}", "nobody@phs.test");
        for method in ["get", "put", "post", "delete", "patch"] {
            let r = raw.call(&method.to_uppercase(), &concrete, Some(&admin));
            let code = r.body["error"]["code"].as_str().unwrap_or_default();
            if documented.contains(&(method.to_string(), path.clone())) {
                assert!(
                    code != "not_found" && code != "method_not_allowed",
                    "{method} {path} is documented but not routed: {} {}",
                    r.status,
                    r.body
                );
            } else {
                assert_eq!(
                    (r.status, code),
                    (405, "method_not_allowed"),
                    "{method} {path} is routed but not documented"
                );
                let schema = &doc.0["components"]["responses"]["MethodNotAllowed"]["content"]
                    ["application/json"]["schema"];
                doc.check(schema, &r.body, "$").unwrap();
            }
        }
    }
    let r = raw.call("GET", "/v1/not-a-route", Some(&admin));
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    let check = |m: &str, p: &str, r: &Reply| doc.check_response(m, p, r.status, &r.body);
    let digest = digest_of("Open-Api-Pass1");
    let cred = |anchor: &str, at: &str| serde_json::json!({"credentials": [{"source_anchor": anchor, "digest": digest.as_str(), "changed_at": at}]});
    let mut seen = std::collections::HashSet::new();
    let mut call = |m: &str, template: &str, path: &str, r: Reply, expect: u16| {
        assert_eq!(r.status, expect, "{m} {path}: {}", r.body);
        check(m, template, &r);
        seen.insert((m.to_string(), template.to_string()));
    };
    call(
        "get",
        "/v1/health",
        "/v1/health",
        raw.get("/v1/health", None),
        200,
    );
    call(
        "get",
        "/v1/token",
        "/v1/token",
        raw.get("/v1/token", Some(&agent)),
        200,
    );
    call(
        "get",
        "/v1/token",
        "/v1/token",
        raw.get("/v1/token", None),
        401,
    );
    let users = serde_json::json!({"users": [{"source_anchor": "T1BFTg==", "user_principal_name": "open@phs.test", "display_name": "Open", "enabled": true}]});
    call(
        "post",
        "/v1/sync/users",
        "/v1/sync/users",
        raw.post("/v1/sync/users", Some(&agent), &users),
        200,
    );
    call(
        "post",
        "/v1/sync/users",
        "/v1/sync/users",
        raw.post("/v1/sync/users", Some(&admin), &users),
        403,
    );
    for (anchor, at) in [
        ("T1BFTg==", "2026-01-02T00:00:00Z"),
        ("T1BFTg==", "2026-01-01T00:00:00Z"),
        ("Tk9ORQ==", "2026-01-01T00:00:00Z"),
    ] {
        call(
            "post",
            "/v1/sync/credentials",
            "/v1/sync/credentials",
            raw.post("/v1/sync/credentials", Some(&agent), &cred(anchor, at)),
            200,
        );
    }
    call(
        "post",
        "/v1/sync/credentials",
        "/v1/sync/credentials",
        raw.send(
            "POST",
            "/v1/sync/credentials",
            Some(&agent),
            "application/json",
            b"[1,2",
        ),
        400,
    );
    // The same password again with the agent's leaked-list verdict: open@ is marked,
    // and the user object and the administrators' list show it (schemas checked).
    let leaked = serde_json::json!({"credentials": [{"source_anchor": "T1BFTg==", "digest": digest.as_str(), "changed_at": "2026-01-02T00:00:00Z", "leak_check": {"leaked": true, "breach_count": 12, "block_sign_in": false}}]});
    call(
        "post",
        "/v1/sync/credentials",
        "/v1/sync/credentials",
        raw.post("/v1/sync/credentials", Some(&agent), &leaked),
        200,
    );
    let risks = raw.get("/v1/risks", Some(&admin));
    assert_eq!(
        risks.body["risks"][0]["user_principal_name"],
        "open@phs.test"
    );
    assert_eq!(risks.body["risks"][0]["kind"], "leaked_credentials");
    assert_eq!(risks.body["risks"][0]["breach_count"], 12);
    call("get", "/v1/risks", "/v1/risks", risks, 200);
    call(
        "get",
        "/v1/risks",
        "/v1/risks",
        raw.get("/v1/risks", Some(&agent)),
        403,
    );
    call(
        "get",
        "/v1/sync/users",
        "/v1/sync/users",
        raw.get("/v1/sync/users", Some(&agent)),
        200,
    );
    call(
        "get",
        "/v1/sync/users",
        "/v1/sync/users",
        raw.get("/v1/sync/users?source_anchor=T1BFTg%3D%3D", Some(&agent)),
        200,
    );
    call(
        "post",
        "/v1/users",
        "/v1/users",
        raw.post(
            "/v1/users",
            Some(&admin),
            &serde_json::json!({"user_principal_name": "cloud@phs.test"}),
        ),
        201,
    );
    call(
        "post",
        "/v1/users",
        "/v1/users",
        raw.post(
            "/v1/users",
            Some(&admin),
            &serde_json::json!({"user_principal_name": "cloud@phs.test"}),
        ),
        409,
    );
    call(
        "post",
        "/v1/users",
        "/v1/users",
        raw.post(
            "/v1/users",
            Some(&admin),
            &serde_json::json!({"user_principal_name": "no-at-sign"}),
        ),
        400,
    );
    call(
        "get",
        "/v1/users",
        "/v1/users",
        raw.get("/v1/users", Some(&admin)),
        200,
    );
    let open = raw.get("/v1/users/open@phs.test", Some(&admin));
    assert_eq!(
        open.body["risks"][0]["kind"], "leaked_credentials",
        "{}",
        open.body
    );
    call(
        "get",
        "/v1/users/{upn}",
        "/v1/users/open@phs.test",
        open,
        200,
    );
    call(
        "get",
        "/v1/users/{upn}",
        "/v1/users/x",
        raw.get("/v1/users/nobody@phs.test", Some(&admin)),
        404,
    );
    let reset =
        |pw: &str| serde_json::json!({"password": pw, "force_change_at_next_sign_in": false});
    call(
        "post",
        "/v1/users/{upn}/password",
        "-",
        raw.post(
            "/v1/users/cloud@phs.test/password",
            Some(&admin),
            &reset("Sky-Passw0rd-1"),
        ),
        200,
    );
    call(
        "post",
        "/v1/users/{upn}/password",
        "-",
        raw.post(
            "/v1/users/cloud@phs.test/password",
            Some(&admin),
            &reset("weak"),
        ),
        422,
    );
    call(
        "post",
        "/v1/users/{upn}/password",
        "-",
        raw.post(
            "/v1/users/nobody@phs.test/password",
            Some(&admin),
            &reset("Sky-Passw0rd-1"),
        ),
        404,
    );
    let sign_in =
        |pw: &str| serde_json::json!({"user_principal_name": "open@phs.test", "password": pw});
    let ok = raw.post("/v1/sign-in", None, &sign_in("Open-Api-Pass1"));
    let session = ok.body["session_token"].as_str().unwrap().to_string();
    call("post", "/v1/sign-in", "/v1/sign-in", ok, 200);
    call(
        "post",
        "/v1/sign-in",
        "/v1/sign-in",
        raw.post("/v1/sign-in", None, &sign_in("Wrong-Pass1")),
        401,
    );
    call(
        "post",
        "/v1/sign-in",
        "/v1/sign-in",
        raw.send("POST", "/v1/sign-in", None, "text/plain", b"x"),
        415,
    );
    call(
        "get",
        "/v1/session",
        "/v1/session",
        raw.get("/v1/session", Some(&session)),
        200,
    );
    call(
        "get",
        "/v1/session",
        "/v1/session",
        raw.get("/v1/session", Some("nope")),
        401,
    );
    let change = |old: &str, new: &str| serde_json::json!({"user_principal_name": "cloud@phs.test", "old_password": old, "new_password": new});
    call(
        "post",
        "/v1/password/change",
        "-",
        raw.post(
            "/v1/password/change",
            None,
            &change("Sky-Passw0rd-1", "short"),
        ),
        422,
    );
    call(
        "post",
        "/v1/password/change",
        "-",
        raw.post(
            "/v1/password/change",
            None,
            &change("Sky-Passw0rd-1", "Sky-Passw0rd-2"),
        ),
        200,
    );
    call(
        "post",
        "/v1/password/change",
        "-",
        raw.post(
            "/v1/password/change",
            None,
            &change("Wrong-Passw0rd-1", "Sky-Passw0rd-3"),
        ),
        401,
    );
    call(
        "get",
        "/v1/audit",
        "/v1/audit",
        raw.get("/v1/audit?limit=50", Some(&admin)),
        200,
    );
    call(
        "get",
        "/v1/audit",
        "/v1/audit",
        raw.get("/v1/audit", Some(&agent)),
        403,
    );
    let settings = raw.get("/v1/settings", Some(&agent));
    let mut body = settings.body.clone();
    call("get", "/v1/settings", "/v1/settings", settings, 200);
    body["lockout_threshold"] = 5.into();
    call(
        "put",
        "/v1/settings",
        "/v1/settings",
        raw.send(
            "PUT",
            "/v1/settings",
            Some(&admin),
            "application/json",
            body.to_string().as_bytes(),
        ),
        200,
    );
    call(
        "put",
        "/v1/settings",
        "/v1/settings",
        raw.send(
            "PUT",
            "/v1/settings",
            Some(&admin),
            "application/json",
            b"{\"min_length\": 9}",
        ),
        400,
    );
    call(
        "get",
        "/v1/status",
        "/v1/status",
        raw.get("/v1/status", Some(&admin)),
        200,
    );
    let del = |p: &str| {
        Raw::reply(
            raw.agent
                .delete(format!("{}{p}", raw.url))
                .header("Authorization", format!("Bearer {admin}"))
                .call(),
        )
    };
    call(
        "delete",
        "/v1/users/{upn}/sessions",
        "-",
        del("/v1/users/open@phs.test/sessions"),
        200,
    );
    call(
        "delete",
        "/v1/users/{upn}/sessions",
        "-",
        del("/v1/users/nobody@phs.test/sessions"),
        404,
    );
    call(
        "delete",
        "/v1/users/{upn}",
        "-",
        del("/v1/users/cloud@phs.test"),
        204,
    );
    call(
        "delete",
        "/v1/users/{upn}",
        "-",
        del("/v1/users/cloud@phs.test"),
        404,
    );
    for (m, p) in &routes {
        if !p.contains("openapi") {
            assert!(
                seen.contains(&(m.clone(), p.clone())),
                "{m} {p} was not exercised"
            );
        }
    }
}

#[test]
fn per_address_throttling_and_request_timeouts() {
    let lab = ServiceLab::with_settings(
        "svc-limits",
        "sign_in_per_address_per_minute = 2\nrequest_timeout_seconds = 1",
    );
    let service = lab.serve();
    let raw = Raw::new(&lab, &service);
    let attempt = |upn: &str| {
        raw.post(
            "/v1/sign-in",
            None,
            &serde_json::json!({"user_principal_name": upn, "password": "Wrong-Passw0rd"}),
        )
    };
    assert_eq!(attempt("one@phs.test").status, 401);
    assert_eq!(attempt("two@phs.test").status, 401);
    assert_error(&attempt("three@phs.test"), 429, "too_many_requests");

    // A client that sends headers and then stalls its body gets 503 timeout, not a hang.
    let plain = ServiceProcess::start(&lab.config, &["--insecure-http"]);
    let addr = plain.url.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"POST /v1/sign-in HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(reply.contains("\"timeout\""), "{reply}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn the_client_retries_while_the_service_starts() {
    let lab = ServiceLab::new("svc-retry");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = lab.dir.0.join("fixed-port.toml");
    let text = std::fs::read_to_string(&lab.config)
        .unwrap()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(&config, text).unwrap();
    let starter = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(400));
        ServiceProcess::start(&config, &[])
    });
    // The first attempts find nothing listening; the backoff outlasts the start.
    let admin = cloud::open_target(
        &TenantTarget {
            location: format!("https://127.0.0.1:{port}"),
            token_file: Some(lab.admin_token.clone()),
            ca_file: Some(lab.pki.ca_file.clone()),
        },
        "t",
    )
    .unwrap();
    let service = starter.join().unwrap();
    assert_eq!(admin.users().unwrap().len(), 0);
    drop(service);
    // With the service gone for good, the same client reports it unreachable.
    assert!(matches!(admin.users(), Err(CloudError::Unreachable(_))));
}

#[test]
fn stores_migrate_and_refuse_a_newer_schema() {
    // PostgreSQL: replicas starting together migrate once; a newer schema is refused.
    let db = phsync_testkit::tenant::TestDatabase::new("migrate");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || cloud::open_store(&url).map(|_| ()))
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    let mut c = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    let versions: i64 = c
        .query_one("SELECT count(*) FROM phsync_migrations", &[])
        .unwrap()
        .get(0);
    // Each migration once, however many replicas started together.
    assert_eq!(versions, 3);
    c.execute("INSERT INTO phsync_migrations (version) VALUES (99)", &[])
        .unwrap();
    let err = cloud::open_store(&db.url).err().unwrap().to_string();
    assert!(err.contains("newer phsync"), "{err}");
    assert!(
        !err.contains(
            db.url
                .split('@')
                .next()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
        ),
        "password in {err}"
    );

    // A URL asking for TLS, which this store does not speak, is refused up front.
    let err = cloud::open_store(&format!("{}?sslmode=require", db.url))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("without TLS") && err.contains("***"), "{err}");

    // SQLite: a tenant file of the first schema opens, keeps its users and gains sources.
    let dir = phsync_testkit::tenant::TempDir::new("migrate-sqlite");
    let path = dir.0.join("v1.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE users (id INTEGER PRIMARY KEY, upn TEXT NOT NULL, upn_key TEXT NOT NULL UNIQUE,
               source_anchor TEXT UNIQUE, display_name TEXT, enabled INTEGER NOT NULL,
               origin TEXT NOT NULL CHECK (origin IN ('synced', 'cloud')),
               created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
             CREATE TABLE credentials (user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
               source TEXT NOT NULL, secret TEXT NOT NULL, changed_at INTEGER NOT NULL,
               applied_at INTEGER NOT NULL, force_change INTEGER NOT NULL);
             CREATE TABLE lockouts (upn_key TEXT PRIMARY KEY, failures INTEGER NOT NULL,
               window_start INTEGER NOT NULL, locked_until INTEGER, salt BLOB NOT NULL, recent BLOB NOT NULL);
             CREATE TABLE sessions (token_hash BLOB PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
               created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
             CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, actor TEXT NOT NULL,
               action TEXT NOT NULL, upn TEXT, source_anchor TEXT, outcome TEXT NOT NULL, detail TEXT);
             INSERT INTO users (upn, upn_key, source_anchor, display_name, enabled, origin, created_at, updated_at)
               VALUES ('old@phs.test', 'old@phs.test', 'T0xE', NULL, 1, 'synced', 1, 1);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let tenant = cloud::open(path.to_str().unwrap(), "t").unwrap();
    assert_eq!(
        tenant
            .user_by_anchor("T0xE")
            .unwrap()
            .unwrap()
            .user_principal_name,
        "old@phs.test"
    );
    tenant
        .apply_synced_credential(&cred("T0xE", "Old-User-Pass1", t(1)))
        .unwrap();
    assert_eq!(
        tenant
            .sign_in("old@phs.test", &utf16("Old-User-Pass1"))
            .unwrap()
            .result,
        SignInStatus::Success
    );
    drop(tenant);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let err = cloud::open(path.to_str().unwrap(), "t")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("newer phsync"), "{err}");
}
