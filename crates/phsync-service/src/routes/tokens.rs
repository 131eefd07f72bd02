//! `GET /v1/token`: what the presented API token is and may do.

use axum::Json;

use phsync_tenant::wire::TokenInfo;

use super::Routes;
use crate::auth::AnyCaller;
use crate::error::ApiResult;

pub(super) fn routes() -> Routes {
    Routes::new().get("/v1/token", token_info)
}

/// Agents and administrators check their setup with it.
async fn token_info(AnyCaller(caller): AnyCaller) -> ApiResult<Json<TokenInfo>> {
    Ok(Json(TokenInfo {
        id: caller.token_id,
        name: caller.name,
        role: caller.role,
        source: caller.source,
    }))
}
