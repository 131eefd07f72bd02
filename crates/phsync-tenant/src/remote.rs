//! A tenant behind `phsync cloud serve`, over HTTPS, so the engine, the CLI and the C ABI
//! work unchanged against it. Batches for agents; retries with backoff where repeating a
//! request is harmless (reads, provisioning, credentials: a repeated credential is stale).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use zeroize::Zeroizing;

use super::store::TokenRole;
use super::tenant::password_text;
use super::{
    AuditEntry, CloudError, CloudResult, CloudTenant, CredentialOutcome, ProvisionOutcome,
    RiskEntry, SessionInfo, SetPasswordResult, SignInResult, SyncedCredential, SyncedUserSpec,
    TenantSettings, TenantStatus, TenantTarget, User,
};
use crate::wire::*;

/// Credentials per request: well under the service's body limit (1 MiB by default).
const CREDENTIAL_CHUNK: usize = 500;
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// All attempts of one operation together, backoff included: a service that accepts
/// connections but never answers must not hold the engine or an admin for minutes.
const RETRY_BUDGET: Duration = Duration::from_secs(40);
/// An attempt is not started with less than this left of the budget.
const MIN_ATTEMPT: Duration = Duration::from_secs(1);

/// Time limits of one request (ureq 3 phases).
#[derive(Clone, Copy, Debug)]
struct Timeouts {
    /// Name resolution.
    resolve: Duration,
    /// TCP connection and TLS handshake together (ureq counts the handshake as connecting).
    connect: Duration,
    /// From the request sent to the reply's headers: the first byte included.
    recv_response: Duration,
    /// The whole request, reply body included.
    per_call: Duration,
}

const TIMEOUTS: Timeouts = Timeouts {
    resolve: Duration::from_secs(5),
    connect: Duration::from_secs(5),
    recv_response: Duration::from_secs(15),
    per_call: Duration::from_secs(20),
};

pub struct RemoteTenant {
    base: String,
    agent: ureq::Agent,
    timeouts: Timeouts,
    budget: Duration,
    token: Zeroizing<String>,
    info: TokenInfo,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Repeating the request changes nothing: retry on any transport error, 429 and 5xx.
    Safe,
    /// Retry only if the connection could not be made (the request never left).
    ConnectOnly,
}

fn read_token(path: &Path) -> CloudResult<Zeroizing<String>> {
    let fail =
        |m: String| CloudError::InvalidArgument(format!("token file {}: {m}", path.display()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(fail(
                "readable by other users; restrict it (chmod 600) before using it".into(),
            ));
        }
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?);
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(fail("expected one token (phs_...) on one line".into()));
    }
    Ok(Zeroizing::new(token.to_string()))
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `scheme://host[:port]` without a trailing slash; http only to loopback.
fn base_url(location: &str) -> CloudResult<String> {
    let bad = |why: &str| {
        CloudError::UnsupportedTarget(format!("{} ({why})", super::postgres::redact_url(location)))
    };
    let (scheme, rest) = location.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return Err(bad(
            "expected https://host[:port] with no path, query or user",
        ));
    }
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') || authority.starts_with('[') => {
            if port.parse::<u16>().is_err() && !authority.ends_with(']') {
                return Err(bad("invalid port"));
            }
            h
        }
        _ => authority,
    };
    match scheme.as_str() {
        "https" => {}
        "http" if is_loopback_host(host) => {}
        "http" => return Err(bad("plain http is allowed to loopback addresses only")),
        _ => return Err(bad("expected https://")),
    }
    Ok(format!("{scheme}://{authority}"))
}

/// Percent-encode one path segment (a UPN).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn transport_error(base: &str, e: &ureq::Error, limits: &Timeouts) -> CloudError {
    CloudError::Unreachable(format!("{base}: {}", transport_reason(e, limits)))
}

/// Why a request failed in transport, naming the timeout that ended it.
fn transport_reason(e: &ureq::Error, limits: &Timeouts) -> String {
    use ureq::Timeout as T;
    let secs = |d: Duration| d.as_secs_f32();
    match e {
        ureq::Error::ConnectionFailed => "connection refused or failed".to_string(),
        ureq::Error::HostNotFound => "host not found".to_string(),
        ureq::Error::Timeout(T::Resolve) => {
            format!(
                "host name not resolved within {:.0} s (resolve timeout)",
                secs(limits.resolve)
            )
        }
        ureq::Error::Timeout(T::Connect) => format!(
            "no connection (TCP and TLS handshake) within {:.0} s (connect timeout)",
            secs(limits.connect)
        ),
        ureq::Error::Timeout(T::RecvResponse) => format!(
            "connected, but no reply within {:.0} s (response timeout)",
            secs(limits.recv_response)
        ),
        ureq::Error::Timeout(t @ (T::Global | T::PerCall)) => format!(
            "request not completed within {:.0} s ({t} timeout)",
            secs(limits.per_call)
        ),
        ureq::Error::Timeout(t) => format!("timed out ({t} timeout)"),
        other => other.to_string(),
    }
}

/// Map an error reply to the tenant error it stands for; `subject` names the UPN or anchor.
fn error_from(status: u16, body: &[u8], retry_after: Option<u64>, subject: &str) -> CloudError {
    let detail = serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error)
        .unwrap_or_else(|_| {
            ErrorDetail::new("unknown", format!("HTTP {status} with no error body"))
        });
    error_from_detail(status, detail, retry_after, subject)
}

fn error_from_detail(
    status: u16,
    d: ErrorDetail,
    retry_after: Option<u64>,
    subject: &str,
) -> CloudError {
    match d.code.as_str() {
        "user_not_found" => CloudError::UserNotFound(subject.to_string()),
        "anchor_not_found" => CloudError::AnchorNotFound(subject.to_string()),
        "upn_conflict" => CloudError::UpnConflict(subject.to_string()),
        "anchor_conflict" => CloudError::AnchorConflict(subject.to_string()),
        "policy_violation" => CloudError::PolicyViolation(d.problems),
        "password_too_long" | "invalid_password" => CloudError::InvalidPassword(d.message),
        "invalid_upn" | "invalid_request" | "malformed_digest" | "batch_too_large" => {
            CloudError::InvalidArgument(d.message)
        }
        "forbidden" => CloudError::Forbidden(d.message),
        "domain_owned_by_other_source" => CloudError::DomainOwned(domain_of(subject)),
        "anchor_owned_by_other_source" => CloudError::AnchorOwned(subject.to_string()),
        "unauthorized" => CloudError::Unauthorized(d.message),
        "too_many_requests" => CloudError::Throttled {
            retry_after_seconds: retry_after.unwrap_or(1),
        },
        _ => CloudError::Remote {
            status,
            message: d.message,
        },
    }
}

/// The domain part of a UPN (what a `domain_owned_by_other_source` refusal names).
fn domain_of(upn: &str) -> String {
    upn.rsplit_once('@')
        .map_or(upn, |(_, domain)| domain)
        .to_string()
}

struct Reply {
    status: u16,
    body: Zeroizing<Vec<u8>>,
    retry_after: Option<u64>,
}

/// The HTTP agent for a service: TLS trusting the target's CA file, or the public roots
/// bundled with phsync (webpki-roots) without one.
fn agent_for(target: &TenantTarget, limits: &Timeouts) -> CloudResult<ureq::Agent> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(ca) = &target.ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| CloudError::InvalidArgument(format!("CA file {}: {e}", ca.display())))?;
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(CloudError::InvalidArgument(format!(
                "CA file {}: no PEM certificate in it",
                ca.display()
            )));
        }
        tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
    }
    Ok(ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .timeout_resolve(Some(limits.resolve))
        .timeout_connect(Some(limits.connect))
        .timeout_recv_response(Some(limits.recv_response))
        .timeout_per_call(Some(limits.per_call))
        .max_idle_connections_per_host(8)
        .user_agent(concat!("phsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .into())
}

/// The host and TCP port of a tenant service URL (443 for https, 80 for http by default).
pub fn service_host_port(location: &str) -> CloudResult<(String, u16)> {
    let base = base_url(location)?;
    let (scheme, authority) = base.split_once("://").expect("base_url keeps the scheme");
    let default_port = if scheme == "https" { 443 } else { 80 };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, p.parse::<u16>().unwrap_or(default_port)),
        _ => (authority, default_port),
    };
    Ok((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
    ))
}

/// What a TLS handshake with a tenant service showed ([`probe_tls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsProbe {
    /// The certificate verified (for the host name, against the trusted CAs).
    Verified,
    /// The service's certificate was refused; the reason names the defect.
    CertificateRejected(String),
    /// No handshake: not reachable, not TLS, or a CA file that cannot be used.
    Failed(String),
}

/// The rustls error behind a ureq error, if any.
fn rustls_error(e: &ureq::Error) -> Option<&rustls::Error> {
    match e {
        ureq::Error::Rustls(r) => Some(r),
        ureq::Error::Io(io) => io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
        _ => None,
    }
}

/// One TLS handshake with an `https://` tenant service, trusting what the engine trusts
/// (the target's CA file, or the bundled public roots): an unauthenticated `GET /v1/health`,
/// no token sent, nothing retried.
pub fn probe_tls(target: &TenantTarget, timeout: Duration) -> TlsProbe {
    let base = match base_url(&target.location) {
        Ok(b) => b,
        Err(e) => return TlsProbe::Failed(e.to_string()),
    };
    let limits = Timeouts {
        resolve: timeout,
        connect: timeout,
        recv_response: timeout,
        per_call: timeout * 2,
    };
    let agent = match agent_for(target, &limits) {
        Ok(a) => a,
        Err(e) => return TlsProbe::Failed(e.to_string()),
    };
    match agent.get(&format!("{base}/v1/health")).call() {
        // Any HTTP answer came over a verified connection.
        Ok(_) => TlsProbe::Verified,
        Err(e) => match rustls_error(&e) {
            Some(
                r @ (rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented),
            ) => TlsProbe::CertificateRejected(r.to_string()),
            Some(r) => TlsProbe::Failed(format!("TLS handshake with {base} failed: {r}")),
            None => TlsProbe::Failed(transport_error(&base, &e, &limits).to_string()),
        },
    }
}

impl RemoteTenant {
    /// Connect to the service and learn what the token may do; fails fast on a bad URL,
    /// CA, token or an unreachable service.
    pub fn open(target: &TenantTarget) -> CloudResult<RemoteTenant> {
        let base = base_url(&target.location)?;
        let token_file = target.token_file.as_deref().ok_or_else(|| {
            CloudError::InvalidArgument(format!(
                "the tenant {base} is a remote service: give a token file (token_file / --token-file)"
            ))
        })?;
        let token = read_token(token_file)?;
        let timeouts = TIMEOUTS;
        let agent = agent_for(target, &timeouts)?;
        let mut tenant = RemoteTenant {
            base,
            agent,
            timeouts,
            budget: RETRY_BUDGET,
            token,
            info: TokenInfo {
                id: String::new(),
                name: String::new(),
                role: TokenRole::Agent,
                source: None,
            },
        };
        tenant.info = tenant.get_json("/v1/token", &[], "")?;
        Ok(tenant)
    }

    fn send_once(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&[u8]>,
        bearer: &str,
        limit: Duration,
    ) -> Result<Reply, ureq::Error> {
        let url = format!("{}{path}", self.base);
        let auth = (!bearer.is_empty()).then(|| Zeroizing::new(format!("Bearer {bearer}")));
        let response = match method {
            "GET" | "DELETE" => {
                let mut r = if method == "GET" {
                    self.agent.get(&url)
                } else {
                    self.agent.delete(&url)
                }
                .config()
                .timeout_global(Some(limit))
                .build();
                if let Some(a) = &auth {
                    r = r.header("Authorization", a.as_str());
                }
                for (k, v) in query {
                    r = r.query(*k, *v);
                }
                r.call()
            }
            m => {
                let mut r = match m {
                    "PUT" => self.agent.put(&url),
                    _ => self.agent.post(&url),
                }
                .config()
                .timeout_global(Some(limit))
                .build();
                if let Some(a) = &auth {
                    r = r.header("Authorization", a.as_str());
                }
                r.content_type("application/json")
                    .send(body.unwrap_or(b"{}"))
            }
        };
        let mut response = response?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_vec()?;
        Ok(Reply {
            status,
            body: Zeroizing::new(body),
            retry_after,
        })
    }

    /// One request with retries; `Ok` for any HTTP reply that is not retried. All attempts
    /// share one time budget: the last one gets what is left of it, and none starts without.
    fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&[u8]>,
        retry: Retry,
        bearer: Option<&str>,
    ) -> CloudResult<Reply> {
        let bearer = bearer.unwrap_or(&self.token);
        let started = std::time::Instant::now();
        let deadline = started + self.budget;
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let limit = left.min(self.timeouts.per_call);
            let result = self.send_once(method, path, query, body, bearer, limit);
            let retryable = match (&result, retry) {
                (Ok(r), Retry::Safe) => r.status == 429 || (502..=504).contains(&r.status),
                (Ok(_), Retry::ConnectOnly) => false,
                (Err(_), Retry::Safe) => true,
                (Err(e), Retry::ConnectOnly) => {
                    matches!(e, ureq::Error::ConnectionFailed | ureq::Error::HostNotFound)
                }
            };
            let wait = match &result {
                Ok(r) => r
                    .retry_after
                    .map(|s| Duration::from_secs(s.min(30)))
                    .unwrap_or(backoff),
                Err(_) => backoff,
            };
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let out_of_time = left < wait + MIN_ATTEMPT;
            if !retryable || attempt >= ATTEMPTS || out_of_time {
                return result.map_err(|e| {
                    let limits = Timeouts {
                        per_call: limit,
                        ..self.timeouts
                    };
                    if attempt == 1 {
                        return transport_error(&self.base, &e, &limits);
                    }
                    CloudError::Unreachable(format!(
                        "{}: gave up after {attempt} attempts in {:.0} s (retry budget {} s); \
                         the last one: {}",
                        self.base,
                        started.elapsed().as_secs_f32(),
                        self.budget.as_secs(),
                        transport_reason(&e, &limits)
                    ))
                });
            }
            tracing::debug!(%path, attempt, wait_ms = wait.as_millis() as u64, "tenant service request retried");
            std::thread::sleep(wait);
            backoff *= 2;
            attempt += 1;
        }
    }

    fn decode<T: DeserializeOwned>(&self, reply: &Reply, subject: &str) -> CloudResult<T> {
        if !(200..300).contains(&reply.status) {
            return Err(error_from(
                reply.status,
                &reply.body,
                reply.retry_after,
                subject,
            ));
        }
        serde_json::from_slice(&reply.body).map_err(|e| CloudError::Remote {
            status: reply.status,
            message: format!("unexpected reply from {}: {e}", self.base),
        })
    }

    fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        subject: &str,
    ) -> CloudResult<T> {
        let reply = self.send("GET", path, query, None, Retry::Safe, None)?;
        self.decode(&reply, subject)
    }

    fn send_json<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &impl Serialize,
        retry: Retry,
        subject: &str,
    ) -> CloudResult<T> {
        let bytes = Zeroizing::new(serde_json::to_vec(body).expect("request serializes"));
        let reply = self.send(method, path, &[], Some(&bytes), retry, None)?;
        self.decode(&reply, subject)
    }

    /// Sign-in and password change answer 200 or 401 with the same body.
    fn sign_in_reply(
        &self,
        path: &str,
        body: &impl Serialize,
        upn: &str,
    ) -> CloudResult<SignInResult> {
        let bytes = Zeroizing::new(serde_json::to_vec(body).expect("request serializes"));
        let reply = self.send(
            "POST",
            path,
            &[],
            Some(&bytes),
            Retry::ConnectOnly,
            Some(""),
        )?;
        if reply.status == 401 {
            if let Ok(r) = serde_json::from_slice::<SignInResult>(&reply.body) {
                return Ok(r);
            }
        }
        self.decode(&reply, upn)
    }
}

impl CloudTenant for RemoteTenant {
    fn add_cloud_user(&self, upn: &str, display_name: Option<&str>) -> CloudResult<User> {
        let body = NewCloudUser {
            user_principal_name: upn.into(),
            display_name: display_name.map(str::to_string),
        };
        self.send_json("POST", "/v1/users", &body, Retry::ConnectOnly, upn)
    }

    fn provision_synced_user(&self, spec: &SyncedUserSpec) -> CloudResult<ProvisionOutcome> {
        self.provision_synced_users(std::slice::from_ref(spec))?
            .pop()
            .unwrap_or_else(|| {
                Err(CloudError::Remote {
                    status: 200,
                    message: "no result for the user".into(),
                })
            })
    }

    fn provision_synced_users(
        &self,
        specs: &[SyncedUserSpec],
    ) -> CloudResult<Vec<CloudResult<ProvisionOutcome>>> {
        let mut out = Vec::with_capacity(specs.len());
        for chunk in specs.chunks(MAX_BATCH) {
            let body = ProvisionRequest {
                users: chunk.to_vec(),
            };
            let reply: ProvisionResponse =
                self.send_json("POST", "/v1/sync/users", &body, Retry::Safe, "")?;
            if reply.results.len() != chunk.len() {
                return Err(CloudError::Remote {
                    status: 200,
                    message: format!("{} results for {} users", reply.results.len(), chunk.len()),
                });
            }
            for (spec, item) in chunk.iter().zip(reply.results) {
                out.push(match item {
                    ProvisionItem::Ok { outcome } => Ok(outcome),
                    ProvisionItem::Err { error } => {
                        Err(error_from_detail(200, error, None, &spec.source_anchor))
                    }
                });
            }
        }
        Ok(out)
    }

    fn apply_synced_credential(&self, cred: &SyncedCredential) -> CloudResult<CredentialOutcome> {
        self.apply_synced_credentials(std::slice::from_ref(cred))?
            .pop()
            .unwrap_or_else(|| {
                Err(CloudError::Remote {
                    status: 200,
                    message: "no result for the credential".into(),
                })
            })
    }

    fn apply_synced_credentials(
        &self,
        creds: &[SyncedCredential],
    ) -> CloudResult<Vec<CloudResult<CredentialOutcome>>> {
        let mut out = Vec::with_capacity(creds.len());
        for chunk in creds.chunks(CREDENTIAL_CHUNK) {
            let body = CredentialsRequest {
                credentials: chunk
                    .iter()
                    .map(|c| CredentialItem {
                        source_anchor: c.source_anchor.clone(),
                        digest: c.digest.clone(),
                        changed_at: c.changed_at,
                        force_change_at_next_sign_in: c.force_change_at_next_sign_in,
                        leak_check: c.leak_check,
                    })
                    .collect(),
            };
            let reply: CredentialsResponse =
                self.send_json("POST", "/v1/sync/credentials", &body, Retry::Safe, "")?;
            if reply.results.len() != chunk.len() {
                return Err(CloudError::Remote {
                    status: 200,
                    message: format!(
                        "{} results for {} credentials",
                        reply.results.len(),
                        chunk.len()
                    ),
                });
            }
            for (cred, item) in chunk.iter().zip(reply.results) {
                out.push(match item {
                    CredentialResultItem::Ok(o) => Ok(o),
                    CredentialResultItem::Err { error } => {
                        Err(error_from_detail(200, error, None, &cred.source_anchor))
                    }
                });
            }
        }
        Ok(out)
    }

    fn set_password(
        &self,
        upn: &str,
        password: &[u16],
        force_change: bool,
    ) -> CloudResult<SetPasswordResult> {
        let body = SetPasswordRequest {
            password: password_text(password)?,
            force_change_at_next_sign_in: force_change,
        };
        let path = format!("/v1/users/{}/password", segment(upn));
        self.send_json("POST", &path, &body, Retry::ConnectOnly, upn)
    }

    fn sign_in(&self, upn: &str, password: &[u16]) -> CloudResult<SignInResult> {
        let body = SignInRequest {
            user_principal_name: upn.into(),
            password: password_text(password)?,
        };
        self.sign_in_reply("/v1/sign-in", &body, upn)
    }

    fn change_password(&self, upn: &str, old: &[u16], new: &[u16]) -> CloudResult<SignInResult> {
        let body = ChangePasswordRequest {
            user_principal_name: upn.into(),
            old_password: password_text(old)?,
            new_password: password_text(new)?,
        };
        self.sign_in_reply("/v1/password/change", &body, upn)
    }

    fn validate_session(&self, token: &str) -> CloudResult<Option<SessionInfo>> {
        let reply = self.send("GET", "/v1/session", &[], None, Retry::Safe, Some(token))?;
        if reply.status == 401 {
            return Ok(None);
        }
        self.decode(&reply, "").map(Some)
    }

    fn user(&self, upn: &str) -> CloudResult<Option<User>> {
        let path = format!("/v1/users/{}", segment(upn));
        match self.get_json(&path, &[], upn) {
            Ok(u) => Ok(Some(u)),
            Err(CloudError::UserNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn user_by_anchor(&self, anchor: &str) -> CloudResult<Option<User>> {
        let r: UsersResponse =
            self.get_json("/v1/sync/users", &[("source_anchor", anchor)], anchor)?;
        Ok(r.users.into_iter().next())
    }

    fn users(&self) -> CloudResult<Vec<User>> {
        let path = match self.info.role {
            TokenRole::Agent => "/v1/sync/users",
            TokenRole::Admin => "/v1/users",
        };
        let r: UsersResponse = self.get_json(path, &[], "")?;
        Ok(r.users)
    }

    fn delete_user(&self, upn: &str) -> CloudResult<()> {
        let path = format!("/v1/users/{}", segment(upn));
        let reply = self.send("DELETE", &path, &[], None, Retry::ConnectOnly, None)?;
        if reply.status == 204 {
            return Ok(());
        }
        Err(error_from(
            reply.status,
            &reply.body,
            reply.retry_after,
            upn,
        ))
    }

    fn revoke_sessions(&self, upn: &str) -> CloudResult<u64> {
        let path = format!("/v1/users/{}/sessions", segment(upn));
        let reply = self.send("DELETE", &path, &[], None, Retry::Safe, None)?;
        let r: SessionsRevoked = self.decode(&reply, upn)?;
        Ok(r.revoked)
    }

    fn status(&self) -> CloudResult<TenantStatus> {
        let s: StatusResponse = self.get_json("/v1/status", &[], "")?;
        Ok(TenantStatus {
            store: format!("{} via {}", s.store, self.base),
            counts: s.counts,
        })
    }

    fn audit_log(&self, limit: usize) -> CloudResult<Vec<AuditEntry>> {
        let limit = limit.clamp(1, 10_000).to_string();
        let r: AuditResponse = self.get_json("/v1/audit", &[("limit", &limit)], "")?;
        Ok(r.entries)
    }

    fn risks(&self) -> CloudResult<Vec<RiskEntry>> {
        let r: RisksResponse = self.get_json("/v1/risks", &[], "")?;
        Ok(r.risks)
    }

    fn settings(&self) -> CloudResult<TenantSettings> {
        self.get_json("/v1/settings", &[], "")
    }

    fn update_settings(&self, settings: &TenantSettings) -> CloudResult<()> {
        let _: TenantSettings = self.send_json("PUT", "/v1/settings", settings, Retry::Safe, "")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_urls() {
        assert_eq!(
            base_url("https://t.example:8443/").unwrap(),
            "https://t.example:8443"
        );
        assert_eq!(
            base_url("http://127.0.0.1:80").unwrap(),
            "http://127.0.0.1:80"
        );
        assert_eq!(base_url("http://[::1]:80").unwrap(), "http://[::1]:80");
        assert!(
            base_url("http://t.example").is_err(),
            "plain http off loopback"
        );
        assert!(base_url("https://t.example/v1").is_err());
        let err = base_url("https://u:s3cret@t.example")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "a password in {err}");
        assert!(base_url("ftp://t.example").is_err());
        assert_eq!(segment("a b@x/y"), "a%20b@x%2Fy");
        let hp = |u: &str| service_host_port(u).unwrap();
        assert_eq!(hp("https://t.example:8443/"), ("t.example".into(), 8443));
        assert_eq!(hp("https://t.example"), ("t.example".into(), 443));
        assert_eq!(hp("http://127.0.0.1"), ("127.0.0.1".into(), 80));
        assert_eq!(hp("https://[::1]:9443"), ("::1".into(), 9443));
        assert_eq!(hp("https://[::1]"), ("::1".into(), 443));
        assert!(service_host_port("http://t.example").is_err());
    }
}

/// A service that accepts connections and never answers: the client gives up within the
/// issue-15 limit (45 s) with an error that names the timeout.
#[cfg(all(test, unix))]
mod silent_service {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::time::Instant;

    /// The acceptance limit, with the retry budget (40 s) inside it.
    const LIMIT: Duration = Duration::from_secs(45);

    fn token_file(dir: &Path) -> std::path::PathBuf {
        let p = dir.join("token");
        crate::private_file::write_private(&p, b"phs_test_token\n").unwrap();
        p
    }

    /// Open the tenant in a thread, so a hang fails the test instead of blocking it.
    fn open_bounded(target: TenantTarget) -> (CloudResult<()>, Duration) {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let started = Instant::now();
            let r = RemoteTenant::open(&target).map(|_| ());
            let _ = tx.send((r, started.elapsed()));
        });
        rx.recv_timeout(LIMIT + Duration::from_secs(15))
            .expect("the client still waiting 60 s after it should have given up")
    }

    fn assert_gave_up(result: CloudResult<()>, elapsed: Duration) {
        assert!(elapsed < LIMIT, "gave up only after {elapsed:?}");
        match result {
            Err(CloudError::Unreachable(m)) => {
                assert!(m.contains("timeout"), "the timeout is not named: {m}");
            }
            other => panic!("expected Unreachable, got {:?}", other.err()),
        }
    }

    #[test]
    fn plain_http_service_that_never_answers() {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            for s in listener.incoming().flatten() {
                held.push(s);
            }
        });
        let mut target = TenantTarget::new(format!("http://127.0.0.1:{port}"));
        target.token_file = Some(token_file(dir.path()));
        let (result, elapsed) = open_bounded(target);
        assert_gave_up(result, elapsed);
    }

    #[test]
    fn tls_service_that_completes_the_handshake_and_never_answers() {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let dir = tempfile::tempdir().unwrap();
        let pki = phsync_testkit::service::TestPki::new(dir.path());
        let certs = CertificateDer::pem_file_iter(&pki.cert_file)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&pki.key_file).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handshakes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = handshakes.clone();
        std::thread::spawn(move || {
            for mut tcp in listener.incoming().flatten() {
                let config = config.clone();
                let counted = counted.clone();
                std::thread::spawn(move || {
                    let mut conn = rustls::ServerConnection::new(config).unwrap();
                    while conn.is_handshaking() {
                        if conn.complete_io(&mut tcp).is_err() {
                            return;
                        }
                    }
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    // Read the request and never answer it.
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    let mut buf = [0u8; 4096];
                    while matches!(tls.read(&mut buf), Ok(n) if n > 0) {}
                });
            }
        });
        let mut target = TenantTarget::new(format!("https://127.0.0.1:{port}"));
        target.token_file = Some(token_file(dir.path()));
        target.ca_file = Some(pki.ca_file.clone());
        let (result, elapsed) = open_bounded(target);
        assert!(
            handshakes.load(std::sync::atomic::Ordering::SeqCst) > 0,
            "no TLS handshake completed: {:?}",
            result.as_ref().err()
        );
        assert_gave_up(result, elapsed);
    }
}
