//! [`ApiError`]: the one error type of every handler and extractor, answered as JSON
//! `{"error": {code, message}}` with its HTTP status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use phsync_tenant::wire::{error_code, ErrorBody, ErrorDetail};
use phsync_tenant::CloudError;

/// A refused or failed request. Tenant errors keep the code and status that
/// [`error_code`] gives them (the status is [`CloudError::kind`]'s); the service's own
/// refusals (authentication, body, routing, limits) are built with [`ApiError::new`].
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    detail: ErrorDetail,
    retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: ErrorDetail::new(code, message),
            retry_after: None,
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 401 `unauthorized` (answered with `WWW-Authenticate`).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 500 `internal`: the details go to the log, not to the client.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!(error = %message, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the service log",
        )
    }
}

impl From<CloudError> for ApiError {
    fn from(e: CloudError) -> Self {
        let (_, status) = error_code(&e);
        if status >= 500 {
            tracing::error!(error = %e, "tenant store failed");
        }
        let retry_after = match &e {
            CloudError::Throttled {
                retry_after_seconds,
            } => Some(*retry_after_seconds),
            _ => None,
        };
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            detail: ErrorDetail::from(&e),
            retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(ErrorBody { error: self.detail })).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"phsync\""),
            );
        }
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_errors_keep_their_status_and_headers() {
        let r = ApiError::from(CloudError::Throttled {
            retry_after_seconds: 7,
        })
        .into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
        let r = ApiError::from(CloudError::Storage("db down at host".into())).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let r = ApiError::unauthorized("no token").into_response();
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"phsync\""
        );
        let r = ApiError::from(CloudError::UserNotFound("a@b".into())).into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert!(!r.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
