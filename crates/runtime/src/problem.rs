//! `application/problem+json` (RFC 9457) responses built from core's error codes.
//!
//! Handlers return [`ApiError`]; its `IntoResponse` is the only place a status is chosen, from the
//! code's [`ErrorKind`](quietbox_core::ErrorKind). It never logs: the request layer does.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use quietbox_core::ErrorCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Base of the `type` URI of every problem; the code name is appended.
pub const PROBLEM_TYPE_BASE: &str = "https://quietbox.dev/problems/";

/// An error answer: a code, a human detail, and optional headers.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, for a person. Never holds a secret.
    pub detail: String,
    /// Sets `Retry-After` (429, 503).
    pub retry_after: Option<Duration>,
    /// Sets `WWW-Authenticate` (401, 403).
    pub www_authenticate: Option<String>,
}

impl ApiError {
    /// An error with a code and a detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError {
            code,
            detail: detail.into(),
            retry_after: None,
            www_authenticate: None,
        }
    }

    /// Adds `Retry-After`.
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// Adds `WWW-Authenticate`.
    pub fn with_www_authenticate(mut self, value: impl Into<String>) -> Self {
        self.www_authenticate = Some(value.into());
        self
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.kind().http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ProblemBody {
            kind: format!("{PROBLEM_TYPE_BASE}{}", self.code.name()),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: &self.detail,
            code: self.code.name(),
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(wait) = self.retry_after {
            // Round up: a client retrying early would only be refused again.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if let Some(value) = self
            .www_authenticate
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        response.extensions_mut().insert(self.code);
        response
    }
}

/// A JSON body extractor whose rejections are problem+json (malformed JSON is 400
/// `malformed_body`, an oversized body is 413 `payload_too_large`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(AppJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large");
    }
    let code = match rejection {
        JsonRejection::MissingJsonContentType(_) => ErrorCode::InvalidRequest,
        _ => ErrorCode::MalformedBody,
    };
    ApiError::new(code, rejection.body_text())
}

impl<T: Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

impl From<quietbox_core::CoreError> for ApiError {
    fn from(error: quietbox_core::CoreError) -> Self {
        let code = error.code();
        // Google asked to wait longer than quietbox waits (GOOGLE_RETRY_AFTER_MAX_S): the client
        // is told how long, as Google told us.
        let retry_after = match &error {
            quietbox_core::CoreError::Provider(
                quietbox_core::ports::ProviderError::RateLimited {
                    retry_after: Some(wait),
                },
            ) => Some(*wait),
            _ => None,
        };
        // Internal details of state or provider failures are logged by the request layer from
        // the code; the client gets the message, which names files but never secrets.
        let api = ApiError::new(code, error.to_string());
        match retry_after {
            Some(wait) => api.with_retry_after(wait),
            None => api,
        }
    }
}

impl From<crate::scopes::AuthError> for ApiError {
    fn from(error: crate::scopes::AuthError) -> Self {
        match &error {
            crate::scopes::AuthError::RateLimited { retry_after, .. } => {
                let wait = *retry_after;
                ApiError::new(ErrorCode::RateLimited, error.to_string()).with_retry_after(wait)
            }
            crate::scopes::AuthError::Forbidden(_) => {
                ApiError::new(ErrorCode::Forbidden, error.to_string())
            }
            crate::scopes::AuthError::LimiterUnavailable { .. } => {
                // A 503, not a 429: the client did nothing wrong and may retry in a moment.
                ApiError::new(ErrorCode::RateLimitUnavailable, error.to_string())
                    .with_retry_after(std::time::Duration::from_secs(1))
            }
            crate::scopes::AuthError::Unauthenticated(_) => {
                ApiError::new(ErrorCode::Unauthenticated, error.to_string())
                    .with_www_authenticate("Bearer realm=\"quietbox\"")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quietbox_core::CoreError;
    use quietbox_core::ports::ProviderError;

    #[test]
    fn a_provider_asking_to_wait_longer_than_quietbox_waits_is_a_503_with_its_retry_after() {
        let error = CoreError::Provider(ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(3600)),
        });
        let response = ApiError::from(error).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3600");
        let unknown = ApiError::from(CoreError::Provider(ProviderError::RateLimited {
            retry_after: None,
        }))
        .into_response();
        assert!(unknown.headers().get(header::RETRY_AFTER).is_none());
    }
}
