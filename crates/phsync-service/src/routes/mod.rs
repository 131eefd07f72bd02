//! The routers, one per resource, merged in [`router`]. Each route is declared once, with
//! [`Routes`], which builds the axum router and the (method, path) list ([`routes`]) that
//! the OpenAPI test compares with the published document.

mod audit;
mod openapi;
mod risks;
mod settings;
mod sign_in;
mod status;
mod sync;
mod tokens;
mod users;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{self, MethodRouter};
use axum::Router;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::Peer;
use crate::inflight_guard;

/// An axum router and the list of what it routes, built by the same calls.
pub(crate) struct Routes {
    router: Router<AppState>,
    list: Vec<(&'static str, &'static str)>,
}

macro_rules! method {
    ($name:ident) => {
        pub fn $name<H, T>(self, path: &'static str, handler: H) -> Self
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            self.add(stringify!($name), path, routing::$name(handler))
        }
    };
}

impl Routes {
    pub fn new() -> Self {
        Routes {
            router: Router::new(),
            list: Vec::new(),
        }
    }

    fn add(mut self, method: &'static str, path: &'static str, m: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, m);
        self.list.push((method, path));
        self
    }

    method!(get);
    method!(post);
    method!(put);
    method!(delete);

    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.list.extend(other.list);
        self
    }
}

fn all() -> Routes {
    Routes::new()
        .merge(openapi::routes())
        .merge(status::routes())
        .merge(tokens::routes())
        .merge(sync::routes())
        .merge(users::routes())
        .merge(audit::routes())
        .merge(risks::routes())
        .merge(settings::routes())
        .merge(sign_in::routes())
}

/// Every route the service answers, as (method, path) in OpenAPI's notation, sorted.
pub fn routes() -> Vec<(&'static str, &'static str)> {
    let mut list = all().list;
    list.sort();
    list
}

/// The service: every resource's routes, the JSON fallbacks, and [`guard`] around all.
pub(crate) fn router(app: AppState) -> Router {
    all()
        .router
        .route_layer(axum::middleware::from_fn(note_route))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see /openapi.json",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see /openapi.json",
    )
}

/// Read the whole request body before any handler runs, within the size limit: a body left
/// unread makes the server drop the connection, and a client reusing it would see the drop
/// instead of the answer. A moderately oversized body is read and discarded for the same
/// reason; a huge one is cut off.
async fn buffer_body(limit: usize, req: Request) -> ApiResult<Request> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
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
            ApiError::invalid_request(format!("cannot read the request body: {e}"))
        }
    })?;
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// What the one log line of a request says beyond method and status, filled in as the
/// request is routed ([`note_route`]) and authenticated (`auth`).
#[derive(Clone, Default)]
pub(crate) struct RequestLog(Arc<Mutex<LogFields>>);

#[derive(Default)]
struct LogFields {
    route: Option<String>,
    caller: Option<String>,
}

impl RequestLog {
    /// Who called: `admin:<token id>`, `agent:<token id>`, `user` (sign-in) or `session`.
    pub fn set_caller(&self, caller: String) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).caller = Some(caller);
    }
}

/// Record the route template (`/v1/users/{upn}`, never the UPN itself) for the log line.
async fn note_route(req: Request, next: Next) -> Response {
    if let (Some(path), Some(log)) = (
        req.extensions().get::<MatchedPath>(),
        req.extensions().get::<RequestLog>(),
    ) {
        log.0.lock().unwrap_or_else(|p| p.into_inner()).route = Some(path.as_str().to_string());
    }
    next.run(req).await
}

/// Request timeout, body buffering, in-flight accounting and the request's log line around
/// every request: method, route, status, latency, caller and client address, never a
/// header, body or path value.
async fn guard(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let _inflight = inflight_guard(&app.inflight);
    let started = Instant::now();
    let method = req.method().clone();
    let client = req.extensions().get::<Peer>().map(|p| p.0.ip());
    let log = RequestLog::default();
    req.extensions_mut().insert(log.clone());
    let limit = Duration::from_secs(app.config.request_timeout_seconds);
    let handle = async {
        match buffer_body(app.config.max_body_bytes, req).await {
            Ok(req) => next.run(req).await,
            Err(e) => e.into_response(),
        }
    };
    let mut timed_out = false;
    let response = match tokio::time::timeout(limit, handle).await {
        Ok(r) => r,
        Err(_) => {
            timed_out = true;
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!("the request took longer than {} s", limit.as_secs()),
            )
            .into_response()
        }
    };
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let fields = log.0.lock().unwrap_or_else(|p| p.into_inner());
    let route = fields.route.as_deref().unwrap_or("(no route)");
    let caller = fields.caller.as_deref().unwrap_or("anonymous");
    let client = client.map(|c| c.to_string()).unwrap_or_default();
    if status >= 500 {
        tracing::error!(target: "phsync_service::request", %method, %route, status, latency_ms, %caller, %client, timed_out, "request failed");
    } else {
        tracing::info!(target: "phsync_service::request", %method, %route, status, latency_ms, %caller, %client, "request");
    }
    drop(fields);
    response
}
