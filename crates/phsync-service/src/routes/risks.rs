//! Users at risk (administrators): the leaked-credentials marks (issue 18). Each user's
//! marks are also in its user object (`risks`).

use axum::extract::State;
use axum::Json;

use phsync_tenant::wire::RisksResponse;
use phsync_tenant::CloudTenant;

use super::Routes;
use crate::app::{blocking, AppState};
use crate::auth::AdminCaller;
use crate::error::ApiResult;

pub(super) fn routes() -> Routes {
    Routes::new().get("/v1/risks", risks)
}

async fn risks(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
) -> ApiResult<Json<RisksResponse>> {
    let tenant = app.tenant(&caller.actor(), None);
    let risks = blocking(move || tenant.risks()).await?;
    Ok(Json(RisksResponse { risks }))
}
