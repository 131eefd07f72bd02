//! The tenant's settings: read by agents and administrators, replaced by administrators.

use axum::extract::State;
use axum::Json;

use phsync_tenant::{CloudTenant, TenantSettings};

use super::Routes;
use crate::app::{blocking, AppState};
use crate::auth::{AdminCaller, AnyCaller};
use crate::error::{ApiError, ApiResult};
use crate::extract::{redact_serde_message, ApiJson};

pub(super) fn routes() -> Routes {
    Routes::new()
        .get("/v1/settings", get_settings)
        .put("/v1/settings", put_settings)
}

async fn get_settings(
    State(app): State<AppState>,
    AnyCaller(caller): AnyCaller,
) -> ApiResult<Json<TenantSettings>> {
    let tenant = app.tenant(&caller.actor(), None);
    Ok(Json(blocking(move || tenant.settings()).await?))
}

async fn put_settings(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiJson(value): ApiJson<serde_json::Value>,
) -> ApiResult<Json<TenantSettings>> {
    // PUT replaces the whole policy: a missing field is a mistake, not "use the default".
    let defaults = serde_json::to_value(TenantSettings::default()).map_err(ApiError::internal)?;
    if let (Some(given), Some(all)) = (value.as_object(), defaults.as_object()) {
        if let Some(missing) = all.keys().find(|k| !given.contains_key(*k)) {
            return Err(ApiError::invalid_request(format!(
                "missing field `{missing}`: PUT /v1/settings takes every setting (GET them first)"
            )));
        }
    }
    let settings: TenantSettings = serde_json::from_value(value).map_err(|e| {
        ApiError::invalid_request(format!(
            "invalid settings: {}",
            redact_serde_message(&e.to_string())
        ))
    })?;
    let tenant = app.tenant(&caller.actor(), None);
    let stored = blocking(move || {
        tenant.update_settings(&settings)?;
        tenant.settings()
    })
    .await?;
    Ok(Json(stored))
}
