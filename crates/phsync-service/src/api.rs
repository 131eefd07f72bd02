//! Routes and handlers. Every handler: authenticate, parse, hand the work to the tenant
//! rules on the blocking pool, map the result. Errors are JSON `{"error": {code, message}}`.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;
use zeroize::Zeroizing;

use super::throttle::Throttle;
use super::tokens::{self, Caller};
use super::{inflight_guard, ServiceConfig, OPENAPI};
use phsync_tenant::store::{TenantStore, TokenRole};
use phsync_tenant::wire::*;
use phsync_tenant::{
    upn_key, Clock, CloudError, CloudTenant, LocalTenant, SignInStatus, SyncedCredential,
    TenantSettings,
};

pub(super) struct App {
    pub config: ServiceConfig,
    store: Arc<dyn TenantStore>,
    clock: Arc<dyn Clock>,
    per_user: Throttle,
    per_address: Throttle,
    password_checks: Arc<Semaphore>,
    started: Instant,
    pub inflight: Arc<AtomicUsize>,
}

impl App {
    pub fn new(config: ServiceConfig, store: Arc<dyn TenantStore>, clock: Arc<dyn Clock>) -> Self {
        let checks = match config.max_concurrent_password_checks {
            0 => 2 * std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        App {
            per_user: Throttle::new(config.sign_in_per_user_per_minute),
            per_address: Throttle::new(config.sign_in_per_address_per_minute),
            password_checks: Arc::new(Semaphore::new(checks)),
            config,
            store,
            clock,
            started: Instant::now(),
            inflight: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn tenant(&self, actor: &str, source: Option<String>) -> LocalTenant {
        LocalTenant::new(self.store.clone(), self.clock.clone())
            .with_actor(actor)
            .with_source(source)
    }
}

type AppState = State<Arc<App>>;

/// The client's address, set per connection.
#[derive(Clone, Copy)]
struct Peer(SocketAddr);

pub(super) struct ApiError {
    status: StatusCode,
    detail: ErrorDetail,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            detail: ErrorDetail::new(code, message),
            retry_after: None,
        }
    }

    fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!(error = %message, "request failed");
        ApiError::new(500, "internal", "internal error; see the service log")
    }
}

impl From<CloudError> for ApiError {
    fn from(e: CloudError) -> Self {
        let (_, status) = error_code(&e);
        if status >= 500 {
            tracing::error!(error = %e, "tenant store failed");
        }
        let retry_after = match &e {
            CloudError::Throttled {
                retry_after_seconds,
            } => Some(*retry_after_seconds),
            _ => None,
        };
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            detail: ErrorDetail::from(&e),
            retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(ErrorBody { error: self.detail })).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"phsync\""),
            );
        }
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Run tenant work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CloudError> + Send + 'static,
) -> ApiResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(e)),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn authorize(app: &Arc<App>, headers: &HeaderMap, role: TokenRole) -> ApiResult<Caller> {
    authorize_any(app, headers, &[role]).await
}

async fn authorize_any(
    app: &Arc<App>,
    headers: &HeaderMap,
    roles: &[TokenRole],
) -> ApiResult<Caller> {
    let Some(token) = bearer(headers) else {
        return Err(ApiError::new(
            401,
            "unauthorized",
            "this endpoint needs an API token: Authorization: Bearer phs_...",
        ));
    };
    let token = Zeroizing::new(token.to_string());
    let store = app.store.clone();
    let caller = blocking(move || tokens::authenticate(store.as_ref(), &token)).await?;
    let Some(caller) = caller else {
        return Err(ApiError::new(
            401,
            "unauthorized",
            "the API token is invalid or revoked",
        ));
    };
    if !roles.contains(&caller.role) {
        let wanted: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        return Err(ApiError::new(
            403,
            "forbidden",
            format!(
                "this endpoint needs a token of role {}; this one is {}",
                wanted.join(" or "),
                caller.role.as_str()
            ),
        ));
    }
    Ok(caller)
}

/// Remove a quoted string value from a serde message: it could be a misplaced password.
fn redact_serde_message(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find("string \"") {
        out.push_str(&rest[..i + 7]);
        let after = &rest[i + 8..];
        match after.find("\", ") {
            Some(j) => {
                out.push_str("(redacted)");
                rest = &after[j + 1..];
            }
            None => {
                out.push_str("(redacted)");
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parse a JSON body: 415 without a JSON content type, 400 for anything malformed (the size
/// limit was applied by `guard`).
async fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: Body) -> ApiResult<T> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false);
    if !is_json {
        return Err(ApiError::new(
            415,
            "unsupported_media_type",
            "the request body must be JSON (Content-Type: application/json)",
        ));
    }
    // `guard` has already read the whole body (within the limit).
    let bytes: Bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(ApiError::internal)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            400,
            "invalid_request",
            format!(
                "malformed JSON body: {}",
                redact_serde_message(&e.to_string())
            ),
        )
    })
}

fn path_upn(
    upn: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> ApiResult<String> {
    upn.map(|Path(u)| u).map_err(|e| {
        ApiError::new(
            400,
            "invalid_request",
            format!("invalid user principal name in the path: {e}"),
        )
    })
}

fn check_batch(len: usize) -> ApiResult<()> {
    if len > MAX_BATCH {
        return Err(ApiError::new(
            413,
            "batch_too_large",
            format!("a batch may hold at most {MAX_BATCH} items, this one has {len}"),
        ));
    }
    Ok(())
}

fn utf16(s: &str) -> Zeroizing<Vec<u16>> {
    Zeroizing::new(s.encode_utf16().collect())
}

// ---- agents ----

async fn provision_users(
    State(app): AppState,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<ProvisionResponse>> {
    let caller = authorize(&app, &headers, TokenRole::Agent).await?;
    let req: ProvisionRequest = json_body(&headers, body).await?;
    check_batch(req.users.len())?;
    let tenant = app.tenant(&caller.actor(), caller.source.clone());
    let results = blocking(move || {
        let mut out = Vec::with_capacity(req.users.len());
        for spec in &req.users {
            out.push(match tenant.provision_synced_user(spec) {
                Ok(outcome) => ProvisionItem::Ok { outcome },
                Err(e) if error_code(&e).1 >= 500 => return Err(e),
                Err(e) => ProvisionItem::Err {
                    error: ErrorDetail::from(&e),
                },
            });
        }
        Ok(out)
    })
    .await?;
    Ok(Json(ProvisionResponse { results }))
}

async fn post_credentials(
    State(app): AppState,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<CredentialsResponse>> {
    let caller = authorize(&app, &headers, TokenRole::Agent).await?;
    let req: CredentialsRequest = json_body(&headers, body).await?;
    check_batch(req.credentials.len())?;
    let tenant = app.tenant(&caller.actor(), caller.source.clone());
    let results = blocking(move || {
        let mut out = Vec::with_capacity(req.credentials.len());
        for item in req.credentials {
            let cred = SyncedCredential {
                source_anchor: item.source_anchor.clone(),
                digest: item.digest.clone(),
                changed_at: item.changed_at,
                force_change_at_next_sign_in: item.force_change_at_next_sign_in,
            };
            out.push(match tenant.apply_synced_credential(&cred) {
                Ok(outcome) => CredentialResultItem::Ok(outcome),
                // The store failed: nothing after this point is known; the agent retries
                // the whole batch, which is harmless (stale rejection).
                Err(e) if error_code(&e).1 >= 500 => return Err(e),
                Err(e) => CredentialResultItem::Err {
                    error: ErrorDetail::from(&e),
                },
            });
        }
        Ok(out)
    })
    .await?;
    Ok(Json(CredentialsResponse { results }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnchorQuery {
    source_anchor: Option<String>,
}

async fn source_users(
    State(app): AppState,
    headers: HeaderMap,
    query: Result<Query<AnchorQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<UsersResponse>> {
    let caller = authorize(&app, &headers, TokenRole::Agent).await?;
    let Ok(Query(query)) = query else {
        return Err(ApiError::new(
            400,
            "invalid_request",
            "the only query parameter is source_anchor",
        ));
    };
    let tenant = app.tenant(&caller.actor(), caller.source.clone());
    let users = blocking(move || match query.source_anchor {
        Some(anchor) => Ok(tenant.user_by_anchor(&anchor)?.into_iter().collect()),
        None => tenant.users(),
    })
    .await?;
    Ok(Json(UsersResponse { users }))
}

/// What the presented token may do: agents and admins check their setup with it.
async fn token_info(State(app): AppState, headers: HeaderMap) -> ApiResult<Json<TokenInfo>> {
    let caller = authorize_any(&app, &headers, &[TokenRole::Admin, TokenRole::Agent]).await?;
    Ok(Json(TokenInfo {
        id: caller.token_id,
        name: caller.name,
        role: caller.role,
        source: caller.source,
    }))
}

// ---- administrators ----

async fn list_users(State(app): AppState, headers: HeaderMap) -> ApiResult<Json<UsersResponse>> {
    let caller = authorize(&app, &headers, TokenRole::Admin).await?;
    let tenant = app.tenant(&caller.actor(), None);
    let users = blocking(move || tenant.users()).await?;
    Ok(Json(UsersResponse { users }))
}

async fn add_user(State(app): AppState, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let caller = authorize(&app, &headers, TokenRole::Admin).await?;
    let req: NewCloudUser = json_body(&headers, body).await?;
    let tenant = app.tenant(&caller.actor(), None);
    let user = blocking(move || {
        tenant.add_cloud_user(&req.user_principal_name, req.display_name.as_deref())
    })
    .await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

async fn get_user(
    State(app): AppState,
    headers: HeaderMap,
    upn: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> ApiResult<Response> {
    let caller = authorize(&app, &headers, TokenRole::Admin).await?;
    let upn = path_upn(upn)?;
    let tenant = app.tenant(&caller.actor(), None);
    let lookup = upn.clone();
    match blocking(move || tenant.user(&lookup)).await? {
        Some(user) => Ok(Json(user).into_response()),
        None => Err(CloudError::UserNotFound(upn).into()),
    }
}

async fn delete_user(
    State(app): AppState,
    headers: HeaderMap,
    upn: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> ApiResult<StatusCode> {
    let caller = authorize(&app, &headers, TokenRole::Admin).await?;
    let upn = path_upn(upn)?;
    let tenant = app.tenant(&caller.actor(), None);
    blocking(move || tenant.delete_user(&upn)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reset_password(
    State(app): AppState,
    headers: HeaderMap,
    upn: Result<Path<String>, axum::extract::rejection::PathRejection>,
    body: Body,
) -> ApiResult<Response> {
    let caller = authorize(&app, &headers, TokenRole::Admin).await?;
    let upn = path_upn(upn)?;
    let req: SetPasswordRequest = json_body(&headers, body).await?;
    let tenant = app.tenant(&caller.actor(), None);
    let result = blocking(move || {
        tenant.set_password(
            &upn,
            &utf16(&req.password),
            req.force_change_at_next_sign_in,
        )
    })
    .await?;
    Ok(Json(result).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<usize>,
}

async fn audit(
    State(app): AppState,
    headers: HeaderMap,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<AuditResponse>> {
    let caller = authorize(&app, &headers, TokenRole::Admin).await?;
    let Ok(Query(query)) = query else {
        return Err(ApiError::new(
            400,
            "invalid_request",
            "the only query parameter is limit (1-10000)",
        ));
    };
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::new(
            400,
            "invalid_request",
            "limit must be 1-10000",
        ));
    }
    let tenant = app.tenant(&caller.actor(), None);
    let entries = blocking(move || tenant.audit_log(limit)).await?;
    Ok(Json(AuditResponse { entries }))
}

async fn get_settings(State(app): AppState, headers: HeaderMap) -> ApiResult<Json<TenantSettings>> {
    let caller = authorize_any(&app, &headers, &[TokenRole::Admin, TokenRole::Agent]).await?;
    let tenant = app.tenant(&caller.actor(), None);
    Ok(Json(blocking(move || tenant.settings()).await?))
}

async fn put_settings(
    State(app): AppState,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<TenantSettings>> {
    let caller = authorize(&app, &headers, TokenRole::Admin).await?;
    let value: serde_json::Value = json_body(&headers, body).await?;
    // PUT replaces the whole policy: a missing field is a mistake, not "use the default".
    let defaults = serde_json::to_value(TenantSettings::default()).expect("settings serialize");
    if let (Some(given), Some(all)) = (value.as_object(), defaults.as_object()) {
        if let Some(missing) = all.keys().find(|k| !given.contains_key(*k)) {
            return Err(ApiError::new(
                400,
                "invalid_request",
                format!("missing field `{missing}`: PUT /v1/settings takes every setting (GET them first)"),
            ));
        }
    }
    let settings: TenantSettings = serde_json::from_value(value).map_err(|e| {
        ApiError::new(
            400,
            "invalid_request",
            format!("invalid settings: {}", redact_serde_message(&e.to_string())),
        )
    })?;
    let tenant = app.tenant(&caller.actor(), None);
    let stored = blocking(move || {
        tenant.update_settings(&settings)?;
        tenant.settings()
    })
    .await?;
    Ok(Json(stored))
}

async fn status(State(app): AppState, headers: HeaderMap) -> ApiResult<Json<StatusResponse>> {
    let caller = authorize(&app, &headers, TokenRole::Admin).await?;
    let tenant = app.tenant(&caller.actor(), None);
    let status = blocking(move || tenant.status()).await?;
    Ok(Json(StatusResponse {
        service: "phsync".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        store: status.store,
        uptime_seconds: app.started.elapsed().as_secs(),
        counts: status.counts,
    }))
}

// ---- users ----

/// Both throttles, then a password-check slot.
async fn admit_password_check(
    app: &Arc<App>,
    peer: SocketAddr,
    upn: &str,
) -> ApiResult<tokio::sync::OwnedSemaphorePermit> {
    let throttled = app
        .per_address
        .check(&peer.ip().to_string())
        .and_then(|()| app.per_user.check(&upn_key(upn)));
    if let Err(wait) = throttled {
        return Err(CloudError::Throttled {
            retry_after_seconds: wait.as_secs().max(1),
        }
        .into());
    }
    app.password_checks
        .clone()
        .acquire_owned()
        .await
        .map_err(ApiError::internal)
}

fn sign_in_response(result: phsync_tenant::SignInResult) -> Response {
    let status = if result.result == SignInStatus::Success {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    };
    (status, Json(result)).into_response()
}

async fn sign_in(
    State(app): AppState,
    axum::Extension(Peer(peer)): axum::Extension<Peer>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let req: SignInRequest = json_body(&headers, body).await?;
    let permit = admit_password_check(&app, peer, &req.user_principal_name).await?;
    let tenant = app.tenant(&format!("user@{}", peer.ip()), None);
    let result = blocking(move || {
        let _permit = permit;
        tenant.sign_in(&req.user_principal_name, &utf16(&req.password))
    })
    .await?;
    Ok(sign_in_response(result))
}

async fn change_password(
    State(app): AppState,
    axum::Extension(Peer(peer)): axum::Extension<Peer>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let req: ChangePasswordRequest = json_body(&headers, body).await?;
    let permit = admit_password_check(&app, peer, &req.user_principal_name).await?;
    let tenant = app.tenant(&format!("user@{}", peer.ip()), None);
    let result = blocking(move || {
        let _permit = permit;
        tenant.change_password(
            &req.user_principal_name,
            &utf16(&req.old_password),
            &utf16(&req.new_password),
        )
    })
    .await?;
    Ok(sign_in_response(result))
}

async fn session(State(app): AppState, headers: HeaderMap) -> ApiResult<Response> {
    let Some(token) = bearer(&headers) else {
        return Err(ApiError::new(401, "unauthorized", "no session token"));
    };
    let token = Zeroizing::new(token.to_string());
    let tenant = app.tenant("session", None);
    match blocking(move || tenant.validate_session(&token)).await? {
        Some(info) => Ok(Json(info).into_response()),
        None => Err(ApiError::new(
            401,
            "unauthorized",
            "the session is invalid or has expired",
        )),
    }
}

// ---- public ----

async fn health(State(app): AppState) -> Response {
    let store = app.store.clone();
    match blocking(move || {
        let mut tx = store.write()?;
        tx.settings()?;
        tx.commit()
    })
    .await
    {
        Ok(()) => Json(HealthResponse {
            status: "ok".into(),
        })
        .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(404, "not_found", "no such endpoint; see /openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        405,
        "method_not_allowed",
        "this endpoint does not take that method; see /openapi.json",
    )
}

/// Read the whole request body before any handler runs, within the size limit: a body left
/// unread makes the server drop the connection, and a client reusing it would see the drop
/// instead of the answer. A moderately oversized body is read and discarded for the same
/// reason; a huge one is cut off.
async fn buffer_body(app: &App, req: Request) -> Result<Request, ApiError> {
    let limit = app.config.max_body_bytes;
    let too_large = || {
        ApiError::new(
            413,
            "payload_too_large",
            format!("the request body exceeds the limit of {limit} bytes"),
        )
    };
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > limit as u64) {
        if n <= 4 * limit as u64 {
            let _ = axum::body::to_bytes(body, 4 * limit).await;
        }
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if e.to_string().contains("length limit") {
            too_large()
        } else {
            ApiError::new(
                400,
                "invalid_request",
                format!("cannot read the request body: {e}"),
            )
        }
    })?;
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Request timeout, body buffering and in-flight accounting around every request.
async fn guard(State(app): AppState, req: Request, next: Next) -> Response {
    let _inflight = inflight_guard(&app.inflight);
    let limit = Duration::from_secs(app.config.request_timeout_seconds);
    let handle = async {
        match buffer_body(&app, req).await {
            Ok(req) => next.run(req).await,
            Err(e) => e.into_response(),
        }
    };
    match tokio::time::timeout(limit, handle).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            503,
            "timeout",
            format!("the request took longer than {} s", limit.as_secs()),
        )
        .into_response(),
    }
}

/// Every route the service answers, as (method, path) in OpenAPI's notation; the OpenAPI
/// test compares this list with the published document.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/openapi.json"),
    ("get", "/.well-known/openapi.json"),
    ("get", "/v1/health"),
    ("get", "/v1/token"),
    ("post", "/v1/sync/users"),
    ("get", "/v1/sync/users"),
    ("post", "/v1/sync/credentials"),
    ("get", "/v1/users"),
    ("post", "/v1/users"),
    ("get", "/v1/users/{upn}"),
    ("delete", "/v1/users/{upn}"),
    ("post", "/v1/users/{upn}/password"),
    ("get", "/v1/audit"),
    ("get", "/v1/settings"),
    ("put", "/v1/settings"),
    ("get", "/v1/status"),
    ("post", "/v1/sign-in"),
    ("post", "/v1/password/change"),
    ("get", "/v1/session"),
];

pub(super) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/.well-known/openapi.json", get(openapi))
        .route("/v1/health", get(health))
        .route("/v1/token", get(token_info))
        .route("/v1/sync/users", post(provision_users).get(source_users))
        .route("/v1/sync/credentials", post(post_credentials))
        .route("/v1/users", get(list_users).post(add_user))
        .route("/v1/users/{upn}", get(get_user).delete(delete_user))
        .route("/v1/users/{upn}/password", post(reset_password))
        .route("/v1/audit", get(audit))
        .route("/v1/settings", get(get_settings).put(put_settings))
        .route("/v1/status", get(status))
        .route("/v1/sign-in", post(sign_in))
        .route("/v1/password/change", post(change_password))
        .route("/v1/session", get(session))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// HTTP/1.1 over one accepted connection (plain or TLS).
pub(super) async fn serve_connection<S>(stream: S, peer: SocketAddr, router: Router)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(Peer(peer));
            router.clone().oneshot(req.map(Body::new))
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

#[cfg(test)]
mod tests {
    use super::redact_serde_message;

    #[test]
    fn serde_messages_lose_string_values() {
        let m = "invalid type: string \"hunter2\", expected a boolean at line 1 column 20";
        let r = redact_serde_message(m);
        assert!(!r.contains("hunter2"), "{r}");
        assert!(r.contains("expected a boolean"), "{r}");
        assert_eq!(
            redact_serde_message("missing field `password` at line 1"),
            "missing field `password` at line 1"
        );
    }
}
