//! The OpenAPI document, at `/openapi.json` and its well-known location. Public.

use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::Routes;
use crate::error::ApiResult;
use crate::OPENAPI;

pub(super) fn routes() -> Routes {
    Routes::new()
        .get("/openapi.json", openapi)
        .get("/.well-known/openapi.json", openapi)
}

async fn openapi() -> ApiResult<Response> {
    Ok(([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response())
}
