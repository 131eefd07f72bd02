//! The audit log (administrators).

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use phsync_tenant::wire::AuditResponse;
use phsync_tenant::CloudTenant;

use super::Routes;
use crate::app::{blocking, AppState};
use crate::auth::AdminCaller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, QueryParams};

pub(super) fn routes() -> Routes {
    Routes::new().get("/v1/audit", audit)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<usize>,
}

impl QueryParams for AuditQuery {
    const HELP: &'static str = "the only query parameter is limit (1-10000)";
}

async fn audit(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditResponse>> {
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::invalid_request("limit must be 1-10000"));
    }
    let tenant = app.tenant(&caller.actor(), None);
    let entries = blocking(move || tenant.audit_log(limit)).await?;
    Ok(Json(AuditResponse { entries }))
}
