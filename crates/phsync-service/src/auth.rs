//! Who may call a handler, declared in its signature: [`AgentCaller`], [`AdminCaller`] or
//! [`AnyCaller`] (an API token of that role, looked up in the store) or [`SessionBearer`]
//! (a user's session token, checked by the handler). A missing, malformed, unknown or
//! revoked token answers 401 `unauthorized` (with `WWW-Authenticate`); a valid token of
//! another role answers 403 `forbidden`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use zeroize::Zeroizing;

use phsync_tenant::store::TokenRole;

use crate::app::{blocking, AppState};
use crate::error::{ApiError, ApiResult};
use crate::tokens::{self, Caller};

/// The token of `Authorization: Bearer <token>`, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn authorize(parts: &Parts, app: &AppState, roles: &[TokenRole]) -> ApiResult<Caller> {
    let Some(token) = bearer(&parts.headers) else {
        return Err(ApiError::unauthorized(
            "this endpoint needs an API token: Authorization: Bearer phs_...",
        ));
    };
    let token = Zeroizing::new(token.to_string());
    let store = app.store.clone();
    let caller = blocking(move || tokens::authenticate(store.as_ref(), &token)).await?;
    let Some(caller) = caller else {
        return Err(ApiError::unauthorized(
            "the API token is invalid or revoked",
        ));
    };
    if let Some(log) = parts.extensions.get::<crate::routes::RequestLog>() {
        log.set_caller(format!("{}:{}", caller.role.as_str(), caller.token_id));
    }
    if !roles.contains(&caller.role) {
        let wanted: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
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

macro_rules! caller_extractor {
    ($(#[$doc:meta])* $name:ident, [$($role:expr),+]) => {
        $(#[$doc])*
        pub(crate) struct $name(pub Caller);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                app: &AppState,
            ) -> Result<Self, ApiError> {
                authorize(parts, app, &[$($role),+]).await.map($name)
            }
        }
    };
}

caller_extractor!(
    /// A sync agent: an agent token, scoped to its sync source.
    AgentCaller,
    [TokenRole::Agent]
);
caller_extractor!(
    /// An administrator: an admin token.
    AdminCaller,
    [TokenRole::Admin]
);
caller_extractor!(
    /// Any valid API token, agent or admin.
    AnyCaller,
    [TokenRole::Admin, TokenRole::Agent]
);

/// A user's session token (`Authorization: Bearer <session token>`), not yet checked.
pub(crate) struct SessionBearer(pub Zeroizing<String>);

impl<S: Send + Sync> FromRequestParts<S> for SessionBearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        if let Some(log) = parts.extensions.get::<crate::routes::RequestLog>() {
            log.set_caller("session".into());
        }
        match bearer(&parts.headers) {
            Some(token) => Ok(SessionBearer(Zeroizing::new(token.to_string()))),
            None => Err(ApiError::unauthorized("no session token")),
        }
    }
}
