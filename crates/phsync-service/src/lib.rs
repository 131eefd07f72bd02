//! `phsync cloud serve`: the tenant as an HTTPS service that many agents share and where
//! users sign in. A thin layer over [`LocalTenant`](phsync_tenant::LocalTenant): every
//! rule is the tenant's, over the same stores (SQLite file or PostgreSQL).
//!
//! # Modules
//!
//! - this file: [`ServiceConfig`] (the `[service]` table), TLS, [`Service`] (accept loop,
//!   connection limit, HTTP/1.1 per connection, graceful shutdown).
//! - `routes`: one router per resource, merged in one place, with the request guard
//!   (timeout, body buffering within `max_body_bytes`, in-flight count) and the JSON 404
//!   and 405 fallbacks. Each route is declared once; [`routes()`] lists them for the
//!   OpenAPI test. Resources: `openapi` (the document at `/openapi.json` and
//!   `/.well-known/openapi.json`), `status` (health, status), `tokens` (`/v1/token`),
//!   `sync` (agents: synced users and credentials), `users` (administrators: users and
//!   password resets), `audit`, `settings`, `sign_in` (sign-in, password change, session).
//! - `auth`: who may call, as extractors in the handler's signature: `AgentCaller`,
//!   `AdminCaller`, `AnyCaller` (an API token of that role) and `SessionBearer` (a user's
//!   session token).
//! - `extract`: the JSON body, `{upn}` path, query string and client address extractors,
//!   answering the API's own 400/415 errors.
//! - `error`: `ApiError`, the one error type of handlers and extractors.
//! - `app`: the shared state, and `blocking`: tenant work on tokio's blocking pool.
//! - [`tokens`]: issuing, checking and revoking API tokens; [`throttle`]: sign-in buckets.
//!
//! # Authentication
//!
//! Agents and administrators present an API token `phs_<16 hex id>_<secret>` as
//! `Authorization: Bearer`; the store keeps only SHA-256 of the secret, compared in constant
//! time. An agent token is scoped to its sync source (the tenant rules enforce the scope);
//! an admin token is not. A missing, malformed, unknown or revoked token answers 401
//! `unauthorized` with `WWW-Authenticate: Bearer realm="phsync"`; a valid token of another
//! role answers 403 `forbidden`. Users sign in with no token; a successful sign-in returns
//! a session token, checked by `GET /v1/session`.
//!
//! # Errors
//!
//! Every handler returns `Result<_, ApiError>`; an error answers JSON
//! `{"error": {"code", "message"}}`. A tenant error ([`CloudError`]) keeps the code and
//! status of [`phsync_tenant::wire::error_code`] (the status is `CloudError::kind()`'s
//! HTTP status); store failures answer 503 `storage_unavailable` and unexpected failures 500
//! `internal`, with the details only in the log. `too_many_requests` carries `Retry-After`.
//! Inside a batch, a refused item carries its own error and the response is still 200;
//! a store failure fails the whole batch.
//!
//! # Limits
//!
//! Blocking store work runs on tokio's blocking pool; password checks (Argon2id, PBKDF2)
//! are throttled per client address and per user name, then capped in concurrency so a
//! sign-in flood cannot exhaust memory. Connections beyond `max_connections` are closed at
//! once; a request past `request_timeout_seconds` answers 503 `timeout`.

mod app;
mod auth;
pub mod clients;
mod error;
mod extract;
mod routes;
pub mod throttle;
pub mod tokens;

pub use routes::routes;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use phsync_tenant::store::TenantStore;
use phsync_tenant::{Clock, CloudError};

/// The `[service]` table of the service's config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Address and port to listen on, e.g. "127.0.0.1:8443" or "[::]:443".
    pub listen: SocketAddr,
    /// A tenant file path or a `postgres://` URL.
    pub store: String,
    /// PEM certificate chain and private key; required unless plain HTTP is asked for.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    #[serde(default = "defaults::request_timeout_seconds")]
    pub request_timeout_seconds: u64,
    /// Sign-in and password-change attempts per user name per minute (0: no limit).
    #[serde(default = "defaults::per_user")]
    pub sign_in_per_user_per_minute: u32,
    /// Sign-in and password-change attempts per client address per minute (0: no limit).
    #[serde(default = "defaults::per_address")]
    pub sign_in_per_address_per_minute: u32,
    /// Password checks running at once (each Argon2id check holds 19 MiB); 0: 2 per CPU.
    #[serde(default)]
    pub max_concurrent_password_checks: usize,
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// Open connections per client (an IPv4 address or an IPv6 /64): one client holding
    /// idle connections cannot take every slot.
    #[serde(default = "defaults::max_connections_per_address")]
    pub max_connections_per_address: usize,
}

mod defaults {
    pub fn max_body_bytes() -> usize {
        1 << 20
    }
    pub fn request_timeout_seconds() -> u64 {
        30
    }
    pub fn per_user() -> u32 {
        20
    }
    pub fn per_address() -> u32 {
        600
    }
    pub fn max_connections() -> usize {
        1024
    }
    pub fn max_connections_per_address() -> usize {
        64
    }
}

/// The largest values the config accepts: beyond them a setting is a mistake (or would
/// overflow a timer or exhaust memory), so loading refuses it with a clear message.
mod maxima {
    pub const MAX_BODY_BYTES: usize = 64 << 20;
    pub const REQUEST_TIMEOUT_SECONDS: u64 = 3600;
    /// Each Argon2id check holds 19 MiB.
    pub const CONCURRENT_PASSWORD_CHECKS: usize = 1024;
    pub const CONNECTIONS: usize = 1 << 20;
    /// PEM certificate chains and keys are a few KiB; this refuses `/dev/zero` and such.
    pub const TLS_FILE_BYTES: u64 = 1 << 20;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    service: ServiceConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("service config {path}: {message}")]
    Config { path: String, message: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {message}")]
    Listen { addr: SocketAddr, message: String },
    #[error(transparent)]
    Store(#[from] CloudError),
    #[error("{0}")]
    Runtime(String),
}

impl ServiceConfig {
    /// Load `[service]` from a TOML file; relative paths are relative to the file.
    pub fn load(path: &Path) -> Result<ServiceConfig, ServiceError> {
        let err = |message: String| ServiceError::Config {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let file: ConfigFile = toml::from_str(&text).map_err(|e| err(e.message().to_string()))?;
        let mut c = file.service;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut c.tls_cert, &mut c.tls_key].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if !c.store.contains("://") && Path::new(&c.store).is_relative() {
            c.store = base.join(&c.store).display().to_string();
        }
        c.validate().map_err(err)?;
        Ok(c)
    }

    /// Every setting within its range (see `maxima`).
    pub fn validate(&self) -> Result<(), String> {
        fn range<T: PartialOrd + std::fmt::Display>(
            name: &str,
            v: T,
            min: T,
            max: T,
        ) -> Result<(), String> {
            if v < min || v > max {
                return Err(format!("{name} must be between {min} and {max}, not {v}"));
            }
            Ok(())
        }
        range(
            "max_body_bytes",
            self.max_body_bytes,
            1024,
            maxima::MAX_BODY_BYTES,
        )?;
        range(
            "request_timeout_seconds",
            self.request_timeout_seconds,
            1,
            maxima::REQUEST_TIMEOUT_SECONDS,
        )?;
        range(
            "max_concurrent_password_checks",
            self.max_concurrent_password_checks,
            0,
            maxima::CONCURRENT_PASSWORD_CHECKS,
        )?;
        range(
            "max_connections",
            self.max_connections,
            1,
            maxima::CONNECTIONS,
        )?;
        range(
            "max_connections_per_address",
            self.max_connections_per_address,
            1,
            self.max_connections,
        )?;
        Ok(())
    }

    /// A config for tests and embedding: loopback, the given store, defaults elsewhere.
    pub fn new(listen: SocketAddr, store: impl Into<String>) -> Self {
        ServiceConfig {
            listen,
            store: store.into(),
            tls_cert: None,
            tls_key: None,
            max_body_bytes: defaults::max_body_bytes(),
            request_timeout_seconds: defaults::request_timeout_seconds(),
            sign_in_per_user_per_minute: defaults::per_user(),
            sign_in_per_address_per_minute: defaults::per_address(),
            max_concurrent_password_checks: 0,
            max_connections: defaults::max_connections(),
            max_connections_per_address: defaults::max_connections_per_address(),
        }
    }
}

/// How the service talks to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tls,
    /// Plain HTTP: only on a loopback address, only when asked for explicitly.
    InsecureHttp,
}

/// A TLS file: a regular file of at most `maxima::TLS_FILE_BYTES`, read once.
fn read_tls_file(path: &Path, what: &str) -> Result<Vec<u8>, ServiceError> {
    let fail = |m: String| ServiceError::Tls(format!("{what} {}: {m}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if meta.len() > maxima::TLS_FILE_BYTES {
        return Err(fail(format!(
            "{} bytes; a PEM file is at most {} bytes",
            meta.len(),
            maxima::TLS_FILE_BYTES
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if what == "tls_key" && mode & 0o007 != 0 {
            return Err(fail(format!(
                "the private key is accessible to every user (mode {mode:04o}); chmod 600 it"
            )));
        }
        if what == "tls_key" && mode & 0o070 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:04o}"), "the TLS private key is readable by its group");
        }
    }
    std::fs::read(path).map_err(|e| fail(e.to_string()))
}

fn tls_acceptor(config: &ServiceConfig) -> Result<tokio_rustls::TlsAcceptor, ServiceError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Err(ServiceError::Tls(
            "tls_cert and tls_key are required (plain HTTP needs --insecure-http and a loopback address)".into(),
        ));
    };
    let cert_pem = read_tls_file(cert, "tls_cert")?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServiceError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ServiceError::Tls(format!(
            "{}: no certificate in the file",
            cert.display()
        )));
    }
    let key_pem = zeroize::Zeroizing::new(read_tls_file(key, "tls_key")?);
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| ServiceError::Tls(format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServiceError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServiceError::Tls(format!("certificate and key: {e}")))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}

/// Let the service hold as many connections as it is configured for: raise the soft limit
/// on open files toward the hard one (a common soft limit is 1024).
fn raise_open_file_limit(wanted: usize) {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return;
            }
            let target = (wanted as libc::rlim_t)
                .saturating_add(256)
                .min(lim.rlim_max);
            if target > lim.rlim_cur {
                lim.rlim_cur = target;
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    tracing::warn!("cannot raise the open-file limit for max_connections");
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = wanted;
}

/// A service bound to its socket, ready to run.
pub struct Service {
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Arc<app::App>,
}

impl Service {
    /// Open the store (migrating it), load TLS material and bind. Call inside a tokio
    /// runtime.
    pub async fn bind(
        config: ServiceConfig,
        transport: Transport,
        clock: Arc<dyn Clock>,
    ) -> Result<Service, ServiceError> {
        let tls = match transport {
            Transport::Tls => Some(tls_acceptor(&config)?),
            Transport::InsecureHttp if config.listen.ip().is_loopback() => None,
            Transport::InsecureHttp => {
                return Err(ServiceError::Tls(format!(
                    "plain HTTP is allowed on loopback addresses only, not {}",
                    config.listen
                )))
            }
        };
        let location = config.store.clone();
        let store: Arc<dyn TenantStore> =
            tokio::task::spawn_blocking(move || phsync_tenant::open_store(&location))
                .await
                .map_err(|e| ServiceError::Runtime(e.to_string()))??;
        raise_open_file_limit(config.max_connections);
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| ServiceError::Listen {
                addr: config.listen,
                message: e.to_string(),
            })?;
        Ok(Service {
            listener,
            tls,
            app: Arc::new(app::App::new(config, store, clock)),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound socket")
    }

    /// "https://127.0.0.1:8443"
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr())
    }

    /// Serve until `shutdown` completes, then let requests in flight finish (up to the
    /// request timeout).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServiceError> {
        let router = routes::router(self.app.clone());
        let config = &self.app.config;
        let connections =
            clients::Connections::new(config.max_connections, config.max_connections_per_address);
        let inflight = self.app.inflight.clone();
        tracing::info!(
            listen = %self.local_addr(),
            tls = self.tls.is_some(),
            store = self.app.store.kind(),
            max_connections = config.max_connections,
            max_connections_per_address = config.max_connections_per_address,
            "service started"
        );
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, most likely: wait instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = &mut shutdown => break,
            };
            let permit = match connections.admit(peer.ip()) {
                Ok(p) => p,
                Err(refusal) => {
                    let (open, from_client) = connections.open(peer.ip());
                    let client = clients::ClientKey::of(peer.ip());
                    match refusal {
                        clients::Refusal::PerClient => tracing::warn!(
                            %peer, %client, open_from_client = from_client,
                            limit = config.max_connections_per_address,
                            "connection refused: max_connections_per_address reached"
                        ),
                        clients::Refusal::Total => tracing::warn!(
                            %peer, open, limit = config.max_connections,
                            "connection refused: max_connections reached"
                        ),
                    }
                    // Dropping the stream closes it at once.
                    continue;
                }
            };
            let tls = self.tls.clone();
            let router = router.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let _ = stream.set_nodelay(true);
                match tls {
                    Some(acceptor) => {
                        match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(tls_stream)) => serve_connection(tls_stream, peer, router).await,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                    None => serve_connection(stream, peer, router).await,
                }
            });
        }
        tracing::info!("service stopping: finishing requests in flight");
        let deadline =
            Instant::now() + Duration::from_secs(self.app.config.request_timeout_seconds);
        while inflight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

/// HTTP/1.1 over one accepted connection (plain or TLS).
async fn serve_connection<S>(stream: S, peer: SocketAddr, router: axum::Router)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt as _;
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(extract::Peer(peer));
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// The OpenAPI document the service publishes at `/openapi.json` (and
/// `/.well-known/openapi.json`), written by hand; the service's tests check it both ways
/// against [`routes()`] and the live router, and check every answer against its schemas.
pub const OPENAPI: &str = include_str!("openapi.json");

pub(crate) fn inflight_guard(counter: &Arc<AtomicUsize>) -> InflightGuard {
    counter.fetch_add(1, Ordering::SeqCst);
    InflightGuard(counter.clone())
}

pub(crate) struct InflightGuard(Arc<AtomicUsize>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
