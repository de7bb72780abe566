//! axum integration (feature `axum`): a tower layer that authenticates every request, an
//! extractor that states a route's scope in its type, problem+json rejections, and the RFC 9728
//! document route.
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use quietbox_auth::http::{AuthLayer, Authorized};
//! use quietbox_auth::{AppScope, Authenticator, RequiredScope};
//!
//! #[derive(Debug, Clone, Copy, PartialEq, Eq)]
//! enum NotesScope { Read }
//! impl AppScope for NotesScope {
//!     const ALL: &'static [Self] = &[NotesScope::Read];
//!     fn as_str(self) -> &'static str { "notes:read" }
//! }
//! struct CanRead;
//! impl RequiredScope for CanRead {
//!     type Scope = NotesScope;
//!     const SCOPE: NotesScope = NotesScope::Read;
//! }
//!
//! async fn list(Authorized(who, ..): Authorized<CanRead>) -> String {
//!     format!("hello {}", who.subject)
//! }
//!
//! # fn app(auth: Arc<Authenticator<NotesScope>>) -> Router {
//! Router::new().route("/notes", get(list)).layer(AuthLayer::new(auth))
//! # }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Json;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::{Layer, Service};

use crate::authenticator::Authenticator;
use crate::error::{AuthError, Reason};
use crate::oauth::PROTECTED_RESOURCE_PATH;
use crate::principal::Principal;
use crate::scopes::{AppScope, RequiredScope};

/// Base of the problem `type` URI; the code name is appended.
pub const PROBLEM_TYPE_BASE: &str = "https://quietbox.dev/problems/";

/// A refusal ready to be rendered as problem+json: the error and its `WWW-Authenticate`
/// challenge. It is the rejection of [`Authorized`] and of the `Principal` extractor.
#[derive(Debug, Clone)]
pub struct Rejection<S: AppScope> {
    /// What was refused.
    pub error: AuthError<S>,
    /// The challenge header value, if any.
    pub challenge: Option<String>,
}

impl<S: AppScope> Rejection<S> {
    /// A rejection with the challenge `auth` would send (without an authenticator, a 401 gets
    /// `Bearer realm="quietbox"` and other refusals none).
    pub fn new(error: AuthError<S>, auth: Option<&Authenticator<S>>) -> Self {
        let challenge = match auth {
            Some(auth) => auth.challenge(&error),
            None if error.status() == 401 => Some("Bearer realm=\"quietbox\"".to_owned()),
            None => None,
        };
        Rejection { error, challenge }
    }
}

/// Status, `application/problem+json` body (`type`, `title`, `status`, `detail`, `code`,
/// `reason`, and `scope` for a 403), `WWW-Authenticate`, and `Retry-After` for 429 and 503.
impl<S: AppScope> IntoResponse for Rejection<S> {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.error.status()).unwrap_or(StatusCode::UNAUTHORIZED);
        let mut body = serde_json::json!({
            "type": format!("{PROBLEM_TYPE_BASE}{}", self.error.code()),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": self.error.to_string(),
            "code": self.error.code(),
            "reason": self.error.reason(),
        });
        if let AuthError::Forbidden(scope) = &self.error {
            body["scope"] = serde_json::Value::String(scope.as_str().to_owned());
        }
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(value) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if let AuthError::RateLimited { retry_after, .. } = &self.error {
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if let AuthError::LimiterUnavailable { .. } = &self.error {
            // The backend reconnects by itself; a second is a fair first guess.
            headers.insert(header::RETRY_AFTER, HeaderValue::from(1u64));
        }
        response
    }
}

/// Renders like [`Rejection::new`] without an authenticator.
impl<S: AppScope> IntoResponse for AuthError<S> {
    fn into_response(self) -> Response {
        Rejection::new(self, None).into_response()
    }
}

/// Authenticates every request; on success the `Principal` (and the authenticator) go into
/// the request extensions, on failure the request is answered 401 without reaching the inner
/// service.
#[derive(Debug, Clone)]
pub struct AuthLayer<S: AppScope> {
    auth: Arc<Authenticator<S>>,
    scopes: Arc<[S]>,
}

impl<S: AppScope> AuthLayer<S> {
    /// A layer using `auth`.
    pub fn new(auth: Arc<Authenticator<S>>) -> Self {
        AuthLayer {
            auth,
            scopes: Arc::from(Vec::new()),
        }
    }

    /// Names `scopes` in the 401 challenge (`scope="…"`), so that an OAuth client knows which
    /// scopes to request (MCP authorization 2025-11-25).
    pub fn naming_scopes(mut self, scopes: &[S]) -> Self {
        self.scopes = Arc::from(scopes);
        self
    }
}

impl<I, S: AppScope> Layer<I> for AuthLayer<S> {
    type Service = AuthService<I, S>;

    fn layer(&self, inner: I) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
            scopes: self.scopes.clone(),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct AuthService<I, S: AppScope> {
    inner: I,
    auth: Arc<Authenticator<S>>,
    scopes: Arc<[S]>,
}

impl<I, S: AppScope> Service<Request> for AuthService<I, S>
where
    I: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    I::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The ready service is the one we were polled for; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        let scopes = self.scopes.clone();
        Box::pin(async move {
            match auth.authenticate(request.headers()).await {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                    request.extensions_mut().insert(auth);
                    inner.call(request).await
                }
                Err(error) => {
                    let challenge = auth.challenge_with_scopes(&error, &scopes);
                    Ok(Rejection { error, challenge }.into_response())
                }
            }
        })
    }
}

/// The authenticated principal, proven to hold `R::SCOPE` (a 403 naming it otherwise). Needs
/// an [`AuthLayer`] of the same scope type in front (a 401 otherwise).
#[derive(Debug, Clone)]
pub struct Authorized<R: RequiredScope>(pub Principal<R::Scope>, pub PhantomData<R>);

impl<R: RequiredScope, St: Send + Sync> FromRequestParts<St> for Authorized<R> {
    type Rejection = Rejection<R::Scope>;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, Self::Rejection> {
        let auth = parts
            .extensions
            .get::<Arc<Authenticator<R::Scope>>>()
            .cloned();
        let Some(principal) = parts.extensions.get::<Principal<R::Scope>>().cloned() else {
            return Err(Rejection::new(
                AuthError::Unauthenticated(Reason::Missing),
                auth.as_deref(),
            ));
        };
        principal
            .require(R::SCOPE)
            .map_err(|error| Rejection::new(error, auth.as_deref()))?;
        Ok(Authorized(principal, PhantomData))
    }
}

/// The principal the [`AuthLayer`] in front authenticated, whatever its scopes.
impl<S: AppScope, St: Send + Sync> FromRequestParts<St> for Principal<S> {
    type Rejection = Rejection<S>;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, Self::Rejection> {
        let auth = parts.extensions.get::<Arc<Authenticator<S>>>().cloned();
        parts
            .extensions
            .get::<Principal<S>>()
            .cloned()
            .ok_or_else(|| {
                Rejection::new(AuthError::Unauthenticated(Reason::Missing), auth.as_deref())
            })
    }
}

/// Routes serving the RFC 9728 document at `/.well-known/oauth-protected-resource` (and with the
/// resource's path appended, as RFC 9728 §3.1 allows). Empty outside `oauth` mode.
pub fn protected_resource_routes<S: AppScope>(auth: Arc<Authenticator<S>>) -> axum::Router {
    let Some(document) = auth.protected_resource_metadata().cloned() else {
        return axum::Router::new();
    };
    let suffix = url::Url::parse(&document.resource)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let document = Arc::new(document);
    let handler = move || {
        let document = document.clone();
        async move { Json((*document).clone()) }
    };
    let mut router = axum::Router::new().route(PROTECTED_RESOURCE_PATH, get(handler.clone()));
    if !suffix.is_empty() {
        router = router.route(&format!("{PROTECTED_RESOURCE_PATH}{suffix}"), get(handler));
    }
    router
}
