//! What sync agents write and read: the synced users and credentials of their own source.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use phsync_tenant::wire::{
    error_code, CredentialResultItem, CredentialsRequest, CredentialsResponse, ErrorDetail,
    ProvisionItem, ProvisionRequest, ProvisionResponse, UsersResponse, MAX_BATCH,
};
use phsync_tenant::{CloudTenant, SyncedCredential};

use super::Routes;
use crate::app::{blocking, AppState};
use crate::auth::AgentCaller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, QueryParams};

pub(super) fn routes() -> Routes {
    Routes::new()
        .post("/v1/sync/users", provision_users)
        .get("/v1/sync/users", source_users)
        .post("/v1/sync/credentials", post_credentials)
}

fn check_batch(len: usize) -> ApiResult<()> {
    if len > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("a batch may hold at most {MAX_BATCH} items, this one has {len}"),
        ));
    }
    Ok(())
}

async fn provision_users(
    State(app): State<AppState>,
    AgentCaller(caller): AgentCaller,
    ApiJson(req): ApiJson<ProvisionRequest>,
) -> ApiResult<Json<ProvisionResponse>> {
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
    State(app): State<AppState>,
    AgentCaller(caller): AgentCaller,
    ApiJson(req): ApiJson<CredentialsRequest>,
) -> ApiResult<Json<CredentialsResponse>> {
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
                leak_check: item.leak_check,
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

impl QueryParams for AnchorQuery {
    const HELP: &'static str = "the only query parameter is source_anchor";
}

async fn source_users(
    State(app): State<AppState>,
    AgentCaller(caller): AgentCaller,
    ApiQuery(query): ApiQuery<AnchorQuery>,
) -> ApiResult<Json<UsersResponse>> {
    let tenant = app.tenant(&caller.actor(), caller.source.clone());
    let users = blocking(move || match query.source_anchor {
        Some(anchor) => Ok(tenant.user_by_anchor(&anchor)?.into_iter().collect()),
        None => tenant.users(),
    })
    .await?;
    Ok(Json(UsersResponse { users }))
}
