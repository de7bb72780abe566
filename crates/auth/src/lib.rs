//! Reusable authentication and authorization for HTTP services: an API key, JWTs (HS256 or a
//! JWKS), an OAuth 2.1 resource-server mode, scopes the application declares, per-tenant rate
//! limits, and an optional axum layer. It depends on no other quietbox crate, so any service
//! can use it alone (see the README for a notes service with `notes:read` and `notes:write`).
//!
//! # Main types
//! - [`AppScope`]: the application declares its scopes on its own `Copy` type; [`ScopeSet`]
//!   is a 64-bit set of them, and [`RequiredScope`] puts one in a type.
//! - [`AuthConfig`] → [`Authenticator<S>`](Authenticator): the one framework-free entry point,
//!   `authenticate(&HeaderMap) -> Result<Principal<S>, AuthError<S>>`.
//! - [`Principal<S>`](Principal): subject, tenant, scopes, [`AuthMethod`]; `require(scope)`
//!   gives a 403. The API key's principal holds every declared scope.
//! - [`AuthError<S>`](AuthError): 401 (with a [`Reason`] label), 403 (naming the scope), 429,
//!   or 503 when the shared rate-limit backend is down and the failure policy refuses.
//! - [`RateLimiter`]: GCRA per (tenant, operation), in memory or (feature `redis`) in Redis so
//!   that replicas share one budget; a [`FailurePolicy`] says what happens when Redis is down.
//! - [`http`] (feature `axum`, on by default): [`http::AuthLayer`], the [`http::Authorized`]
//!   extractor that states a route's scope in its type, and problem+json rejections.
//!
//! # Features
//! - `jwks` (default): JWKS URLs and `oauth` mode, which fetch keys and metadata over HTTPS
//!   (`reqwest`). Without it the API key and HS256 JWTs work, and a configuration naming a
//!   JWKS URL or the `oauth` mode is refused at start-up.
//! - `axum` (default): the [`http`] module.
//! - `redis`: the Redis rate-limit backend.
//!
//! # Example
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use quietbox_auth::{AppScope, AuthConfig, AuthMode, Secret};
//!
//! #[derive(Debug, Clone, Copy, PartialEq, Eq)]
//! enum NotesScope {
//!     Read,
//!     Write,
//! }
//!
//! impl AppScope for NotesScope {
//!     const ALL: &'static [Self] = &[NotesScope::Read, NotesScope::Write];
//!     fn as_str(self) -> &'static str {
//!         match self {
//!             NotesScope::Read => "notes:read",
//!             NotesScope::Write => "notes:write",
//!         }
//!     }
//! }
//!
//! let mut config = AuthConfig::new(AuthMode::ApiKey);
//! config.api_key = Some(Secret::new("a-long-random-key"));
//! let auth = quietbox_auth::Authenticator::<NotesScope>::new(config).await?;
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert("x-api-key", "a-long-random-key".parse()?);
//! let principal = auth.authorize(&headers, NotesScope::Write).await?;
//! assert_eq!(principal.tenant, "default");
//! # Ok(()) }
//! ```
//!
//! # Decisions
//! - Scopes are the application's type, not strings: a route cannot ask for a scope the
//!   application did not declare, and checks are a bit test. Undeclared names in a token are
//!   ignored.
//! - The algorithm is pinned by the key, never taken from the token: the HS256 secret verifies
//!   only HS256 and each JWKS key only its own algorithm, so `alg: none` and HS256 signed with an
//!   RSA public key fail before any signature check.
//! - The JWKS cache refetches at most once per cool-down whatever the cause (unknown `kid`, TTL,
//!   failing endpoint), with concurrent callers sharing one fetch, and serves stale keys while the
//!   endpoint is down: a `kid` flood cannot hammer the identity provider, and an outage of the
//!   provider is not an outage of the service.
//! - Tokens over 8 KiB are refused before decoding; the API key is compared in constant time
//!   whatever its length (SHA-256 digests compared with `subtle`).
//! - `aud` is always required, `iss` whenever an issuer is configured, and an `iat` in the future
//!   is refused. In `oauth` mode a `typ` header must say `at+jwt` (RFC 9068); a token without
//!   `typ` is accepted, because many authorization servers omit it.
//! - Keys and metadata are fetched over https only (http to loopback), within one origin, with
//!   capped bodies and no proxy from the environment; weak RSA keys and keys not meant for
//!   signatures are skipped.
//! - Metrics go through the `metrics` facade (`jwt_verify_errors_total{reason}`,
//!   `jwks_fetch_errors_total`,
//!   `jwks_stale_served_total`, `jwks_keys_skipped_total{reason}`,
//!   `rate_limited_total{operation}`, `rate_limit_backend_errors_total{backend}`), so the host
//!   service picks the exporter.
#![warn(missing_docs)]
// Library code never unwraps; tests may.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod api_key;
mod authenticator;
mod error;
mod fetch;
mod jwks;
mod jwt;
#[cfg(feature = "axum")]
mod layer;
mod mode;
mod oauth;
mod principal;
mod rate_limit;
mod scopes;
mod secret;

// The public API, in one place. Everything public is re-exported here; the modules are private.
mod api {
    pub use crate::api_key::ApiKeyVerifier;
    pub use crate::authenticator::{AuthConfig, Authenticator, DEFAULT_AUDIENCE};
    pub use crate::error::{AuthError, ConfigError, Reason};
    pub use crate::fetch::{FetchUrlError, MAX_REDIRECTS, validate_fetch_url};
    pub use crate::jwks::{JwksTiming, MAX_JWKS_BYTES, MIN_RSA_BITS};
    pub use crate::jwt::MAX_TOKEN_BYTES;
    pub use crate::mode::{AuthMode, UnknownMode};
    pub use crate::oauth::{
        AuthorizationServerMetadata, MAX_METADATA_BYTES, PROTECTED_RESOURCE_PATH,
        ProtectedResourceMetadata, resource_metadata_url,
    };
    pub use crate::principal::{AuthMethod, Principal};
    pub use crate::rate_limit::{
        Backend as RateLimitBackend, BackendError, Decision, FailurePolicy, MemoryBuckets,
        OnBackendError, Quota, RateLimiter,
    };
    #[cfg(feature = "redis")]
    pub use crate::rate_limit::{GCRA_SCRIPT, RedisBuckets};
    pub use crate::scopes::{AppScope, RequiredScope, ScopeSet};
    pub use crate::secret::Secret;
}
pub use api::*;

/// axum integration (feature `axum`): a tower layer that authenticates every request, the
/// [`Authorized`](http::Authorized) extractor that states a route's scope in its type,
/// problem+json rejections, and the RFC 9728 document route.
#[cfg(feature = "axum")]
pub mod http {
    pub use crate::layer::{
        AuthLayer, AuthService, Authorized, PROBLEM_TYPE_BASE, Rejection, protected_resource_routes,
    };
}

// The README's examples compile and run as doc tests (one of them is an axum service).
#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
