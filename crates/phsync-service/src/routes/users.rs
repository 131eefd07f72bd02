//! Users, as administrators manage them: list, create (cloud-only), read, delete, reset
//! the password.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use phsync_tenant::wire::{NewCloudUser, SessionsRevoked, SetPasswordRequest, UsersResponse};
use phsync_tenant::{CloudError, CloudTenant, SetPasswordResult, User};

use super::sign_in::utf16;
use super::Routes;
use crate::app::{blocking, AppState};
use crate::auth::AdminCaller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, UpnPath};

pub(super) fn routes() -> Routes {
    Routes::new()
        .get("/v1/users", list_users)
        .post("/v1/users", add_user)
        .get("/v1/users/{upn}", get_user)
        .delete("/v1/users/{upn}", delete_user)
        .post("/v1/users/{upn}/password", reset_password)
        .delete("/v1/users/{upn}/sessions", revoke_sessions)
}

async fn list_users(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
) -> ApiResult<Json<UsersResponse>> {
    let tenant = app.tenant(&caller.actor(), None);
    let users = blocking(move || tenant.users()).await?;
    Ok(Json(UsersResponse { users }))
}

async fn add_user(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiJson(req): ApiJson<NewCloudUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let tenant = app.tenant(&caller.actor(), None);
    let user = blocking(move || {
        tenant.add_cloud_user(&req.user_principal_name, req.display_name.as_deref())
    })
    .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

async fn get_user(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
    UpnPath(upn): UpnPath,
) -> ApiResult<Json<User>> {
    let tenant = app.tenant(&caller.actor(), None);
    let lookup = upn.clone();
    match blocking(move || tenant.user(&lookup)).await? {
        Some(user) => Ok(Json(user)),
        None => Err(CloudError::UserNotFound(upn).into()),
    }
}

async fn delete_user(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
    UpnPath(upn): UpnPath,
) -> ApiResult<StatusCode> {
    let tenant = app.tenant(&caller.actor(), None);
    blocking(move || tenant.delete_user(&upn)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reset_password(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
    UpnPath(upn): UpnPath,
    ApiJson(req): ApiJson<SetPasswordRequest>,
) -> ApiResult<Json<SetPasswordResult>> {
    let tenant = app.tenant(&caller.actor(), None);
    let result = blocking(move || {
        tenant.set_password(
            &upn,
            &utf16(&req.password),
            req.force_change_at_next_sign_in,
        )
    })
    .await?;
    Ok(Json(result))
}

async fn revoke_sessions(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
    UpnPath(upn): UpnPath,
) -> ApiResult<Json<SessionsRevoked>> {
    let tenant = app.tenant(&caller.actor(), None);
    let lookup = upn.clone();
    let revoked = blocking(move || tenant.revoke_sessions(&lookup)).await?;
    Ok(Json(SessionsRevoked {
        user_principal_name: upn,
        revoked,
    }))
}
