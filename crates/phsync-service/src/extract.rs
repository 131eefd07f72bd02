//! Request extractors that answer the API's own errors: a JSON body ([`ApiJson`]), the
//! `{upn}` path segment ([`UpnPath`]), a query string ([`ApiQuery`]) and the client's
//! address ([`Peer`]).

use std::net::SocketAddr;

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};

/// Remove every value the client sent from a serde message: a string, number or boolean
/// in the wrong field could be a misplaced password ("invalid type: integer `12345678`").
pub(crate) fn redact_serde_message(msg: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(i) = msg.find(prefix) {
            let rest = &msg[i + prefix.len()..];
            if let Some(j) = rest.find(", expected") {
                let kind: Vec<&str> = rest[..j]
                    .split(' ')
                    .take_while(|w| !w.starts_with('`') && !w.starts_with('"'))
                    .collect();
                return format!(
                    "{}{prefix}{} (redacted){}",
                    &msg[..i],
                    kind.join(" "),
                    &rest[j..]
                );
            }
        }
    }
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find("string \"") {
        out.push_str(&rest[..i + 7]);
        let after = &rest[i + 8..];
        match after.find("\", ") {
            Some(j) => {
                out.push_str("(redacted)");
                rest = &after[j + 1..];
            }
            None => {
                out.push_str("(redacted)");
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false)
}

/// A JSON request body: 415 without a JSON content type, 400 for anything malformed, with
/// string values redacted from the message. The size limit was applied before routing.
pub(crate) struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> ApiResult<Self> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request body must be JSON (Content-Type: application/json)",
            ));
        }
        // The guard has already read the whole body (within the limit).
        let bytes = axum::body::to_bytes(req.into_body(), usize::MAX)
            .await
            .map_err(ApiError::internal)?;
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| {
            ApiError::invalid_request(format!(
                "malformed JSON body: {}",
                redact_serde_message(&e.to_string())
            ))
        })
    }
}

/// The `{upn}` of `/v1/users/{upn}...`.
pub(crate) struct UpnPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for UpnPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(upn)) => Ok(UpnPath(upn)),
            Err(e) => Err(ApiError::invalid_request(format!(
                "invalid user principal name in the path: {e}"
            ))),
        }
    }
}

/// A query string type and what to tell a client that sent another.
pub(crate) trait QueryParams: DeserializeOwned {
    const HELP: &'static str;
}

/// A query string; anything unknown or malformed answers 400 with `T::HELP`.
pub(crate) struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: QueryParams> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(ApiQuery(q)),
            Err(_) => Err(ApiError::invalid_request(T::HELP)),
        }
    }
}

/// The client's address, set per connection by the server.
#[derive(Clone, Copy)]
pub(crate) struct Peer(pub SocketAddr);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<Self> {
        parts
            .extensions
            .get::<Peer>()
            .copied()
            .ok_or_else(|| ApiError::internal("no peer address on the request"))
    }
}

#[cfg(test)]
mod tests {
    use super::redact_serde_message;

    #[test]
    fn serde_messages_lose_string_values() {
        let m = "invalid type: string \"hunter2\", expected a boolean at line 1 column 20";
        let r = redact_serde_message(m);
        assert!(!r.contains("hunter2"), "{r}");
        assert!(r.contains("expected a boolean"), "{r}");
        for m in [
            "invalid type: integer `12345678`, expected a string at line 1 column 40",
            "invalid type: floating point `1234.5`, expected a string at line 1 column 9",
            "invalid value: integer `-31337`, expected u32 at line 1 column 3",
            "invalid type: boolean `true`, expected a string at line 1 column 9",
        ] {
            let r = redact_serde_message(m);
            for secret in ["12345678", "1234.5", "31337", "true"] {
                assert!(!r.contains(secret), "{r}");
            }
            assert!(r.contains("(redacted), expected"), "{r}");
        }
        assert_eq!(
            redact_serde_message("missing field `password` at line 1"),
            "missing field `password` at line 1"
        );
    }
}
