//! Users without an API token: sign-in, password change (both throttled per client
//! address and per user name, then capped in concurrency), and session checks.

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use tokio::sync::OwnedSemaphorePermit;
use zeroize::Zeroizing;

use phsync_tenant::wire::{ChangePasswordRequest, SignInRequest};
use phsync_tenant::{upn_key, CloudError, CloudTenant, SessionInfo, SignInResult, SignInStatus};

use super::Routes;
use crate::app::{blocking, App, AppState};
use crate::auth::SessionBearer;
use crate::clients::ClientKey;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Peer};

pub(super) fn routes() -> Routes {
    Routes::new()
        .post("/v1/sign-in", sign_in)
        .post("/v1/password/change", change_password)
        .get("/v1/session", session)
}

pub(super) fn utf16(s: &str) -> Zeroizing<Vec<u16>> {
    Zeroizing::new(s.encode_utf16().collect())
}

/// A well-formed name (checked before it becomes a throttle key or touches the store), both
/// throttles, then a password-check slot.
async fn admit_password_check(
    app: &App,
    peer: SocketAddr,
    upn: &str,
) -> ApiResult<OwnedSemaphorePermit> {
    phsync_tenant::limits::check_upn(upn)?;
    let throttled = app
        .per_address
        .check(&ClientKey::of(peer.ip()).to_string())
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

/// 200 for a success, 401 for any refusal; the body says which.
fn sign_in_response(result: SignInResult) -> (StatusCode, Json<SignInResult>) {
    let status = if result.result == SignInStatus::Success {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    };
    (status, Json(result))
}

async fn sign_in(
    State(app): State<AppState>,
    Peer(peer): Peer,
    ApiJson(req): ApiJson<SignInRequest>,
) -> ApiResult<(StatusCode, Json<SignInResult>)> {
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
    State(app): State<AppState>,
    Peer(peer): Peer,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> ApiResult<(StatusCode, Json<SignInResult>)> {
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

async fn session(
    State(app): State<AppState>,
    SessionBearer(token): SessionBearer,
) -> ApiResult<Json<SessionInfo>> {
    let tenant = app.tenant("session", None);
    match blocking(move || tenant.validate_session(&token)).await? {
        Some(info) => Ok(Json(info)),
        None => Err(ApiError::unauthorized(
            "the session is invalid or has expired",
        )),
    }
}
