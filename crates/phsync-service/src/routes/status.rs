//! Health (public) and status (administrators).

use axum::extract::State;
use axum::Json;

use phsync_tenant::wire::{HealthResponse, StatusResponse};
use phsync_tenant::CloudTenant;

use super::Routes;
use crate::app::{blocking, AppState};
use crate::auth::AdminCaller;
use crate::error::ApiResult;

pub(super) fn routes() -> Routes {
    Routes::new()
        .get("/v1/health", health)
        .get("/v1/status", status)
}

/// Whether the store answers: one transaction, opened and committed.
async fn health(State(app): State<AppState>) -> ApiResult<Json<HealthResponse>> {
    let store = app.store.clone();
    blocking(move || {
        let mut tx = store.write()?;
        tx.settings()?;
        tx.commit()
    })
    .await?;
    Ok(Json(HealthResponse {
        status: "ok".into(),
    }))
}

async fn status(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
) -> ApiResult<Json<StatusResponse>> {
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
