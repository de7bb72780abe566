//! axum integration (feature `axum`): a tower layer that authenticates every request, an
//! extractor that states a route's scope in its type, problem+json rejections, and the RFC 9728
//! document route.
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use quietbox_auth::http::{AuthLayer, Authorized, scope};
//!
//! async fn scan(Authorized(who, ..): Authorized<scope::MailScan>) -> String {
//!     format!("hello {}", who.subject)
//! }
//!
//! # fn app(auth: Arc<quietbox_auth::Authenticator>) -> Router {
//! Router::new().route("/scan", get(scan)).layer(AuthLayer::new(auth))
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
use crate::scopes::Scope;

/// Base of the problem `type` URI; the code name is appended.
pub const PROBLEM_TYPE_BASE: &str = "https://quietbox.dev/problems/";

/// A refusal ready to be rendered: the error and its `WWW-Authenticate` challenge.
#[derive(Debug, Clone)]
pub struct AuthRejection {
    /// What was refused.
    pub error: AuthError,
    /// The challenge header value, if any.
    pub challenge: Option<String>,
}

impl AuthRejection {
    /// A rejection with the challenge `auth` would send (none without an authenticator).
    pub fn new(error: AuthError, auth: Option<&Authenticator>) -> Self {
        let challenge = match auth {
            Some(auth) => auth.challenge(&error),
            None if error.status() == 401 => Some("Bearer realm=\"quietbox\"".to_owned()),
            None => None,
        };
        AuthRejection { error, challenge }
    }
}

impl IntoResponse for AuthRejection {
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
            body["scope"] = serde_json::Value::String(scope.to_string());
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

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        AuthRejection::new(self, None).into_response()
    }
}

/// Authenticates every request; on success the [`Principal`] (and the authenticator) go into
/// the request extensions, on failure the request is answered 401 without reaching the inner
/// service.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
    scopes: Arc<[Scope]>,
}

impl AuthLayer {
    /// A layer using `auth`.
    pub fn new(auth: Arc<Authenticator>) -> Self {
        AuthLayer {
            auth,
            scopes: Arc::from(Vec::new()),
        }
    }

    /// Names `scopes` in the 401 challenge (`scope="…"`), so that an OAuth client knows which
    /// scopes to request (MCP authorization 2025-11-25).
    pub fn naming_scopes(mut self, scopes: &[Scope]) -> Self {
        self.scopes = Arc::from(scopes);
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
            scopes: self.scopes.clone(),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<Authenticator>,
    scopes: Arc<[Scope]>,
}

impl<S> Service<Request> for AuthService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
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
                    Ok(AuthRejection { error, challenge }.into_response())
                }
            }
        })
    }
}

/// A scope required by a route, as a type (see [`scope`]).
pub trait RequiredScope: Send + Sync + 'static {
    /// The scope.
    const SCOPE: Scope;
}

/// Marker types for [`Authorized`], one per scope.
pub mod scope {
    use super::{RequiredScope, Scope};

    macro_rules! markers {
        ($($name:ident => $scope:ident),* $(,)?) => {$(
            #[doc = concat!("Requires `", stringify!($scope), "`.")]
            #[derive(Debug, Clone, Copy)]
            pub struct $name;
            impl RequiredScope for $name {
                const SCOPE: Scope = Scope::$scope;
            }
        )*};
    }

    markers! {
        AvailabilityRead => AvailabilityRead,
        MailScan => MailScan,
        UnsubscribeRead => UnsubscribeRead,
        UnsubscribeExecute => UnsubscribeExecute,
        UnsubscribeDigest => UnsubscribeDigest,
    }
}

/// The authenticated principal, proven to hold `S::SCOPE`. Needs [`AuthLayer`] in front.
#[derive(Debug, Clone)]
pub struct Authorized<S: RequiredScope>(pub Principal, pub PhantomData<S>);

impl<S: RequiredScope, St: Send + Sync> FromRequestParts<St> for Authorized<S> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, Self::Rejection> {
        let auth = parts.extensions.get::<Arc<Authenticator>>().cloned();
        let Some(principal) = parts.extensions.get::<Principal>().cloned() else {
            return Err(AuthRejection::new(
                AuthError::Unauthenticated(Reason::Missing),
                auth.as_deref(),
            ));
        };
        principal
            .require(S::SCOPE)
            .map_err(|error| AuthRejection::new(error, auth.as_deref()))?;
        Ok(Authorized(principal, PhantomData))
    }
}

impl<St: Send + Sync> FromRequestParts<St> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, Self::Rejection> {
        let auth = parts.extensions.get::<Arc<Authenticator>>().cloned();
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
            AuthRejection::new(AuthError::Unauthenticated(Reason::Missing), auth.as_deref())
        })
    }
}

/// Routes serving the RFC 9728 document at `/.well-known/oauth-protected-resource` (and with the
/// resource's path appended, as RFC 9728 §3.1 allows). Empty outside `oauth` mode.
pub fn protected_resource_routes(auth: Arc<Authenticator>) -> axum::Router {
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
