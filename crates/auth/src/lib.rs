//! Reusable authentication and authorization for HTTP services: an API key, JWTs (HS256 or a
//! JWKS), an OAuth 2.1 resource-server mode, five scopes, per-tenant rate limits, and an optional
//! axum layer. It depends on no other quietbox crate, so any service can use it alone.
//!
//! # Main types
//! - [`AuthConfig`] → [`Authenticator`]: the one framework-free entry point,
//!   `authenticate(&HeaderMap) -> Result<Principal, AuthError>`.
//! - [`Principal`]: subject, tenant, [`ScopeSet`], [`AuthMethod`]; `require(Scope)` gives a 403.
//! - [`AuthError`]: 401 (with a [`Reason`] label), 403 (naming the scope), 429, or 503 when
//!   the shared rate-limit backend is down and the failure policy refuses the operation.
//! - [`RateLimiter`]: GCRA per (tenant, operation), in memory or (feature `redis`) in Redis so
//!   that replicas share one budget; a [`FailurePolicy`] says what happens when Redis is down.
//! - [`http`] (feature `axum`, on by default): [`http::AuthLayer`], the [`http::Authorized`]
//!   extractor that states a route's scope in its type, and problem+json rejections.
//!
//! # Example
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use quietbox_auth::{AuthConfig, AuthMode, Authenticator, Scope, Secret};
//!
//! let mut config = AuthConfig::new(AuthMode::ApiKey);
//! config.api_key = Some(Secret::new("a-long-random-key"));
//! let auth = Authenticator::new(config).await?;
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert("x-api-key", "a-long-random-key".parse()?);
//! let principal = auth.authorize(&headers, Scope::MailScan).await?;
//! assert_eq!(principal.tenant, "default");
//! # Ok(()) }
//! ```
//!
//! # Decisions
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
//!   `typ` is accepted, because many authorization servers omit it (see [`jwt`]).
//! - Keys and metadata are fetched over https only (http to loopback), within one origin, with
//!   capped bodies and no proxy from the environment (see [`fetch`]); weak RSA keys and keys not
//!   meant for signatures are skipped (see [`jwks`]).
//! - Metrics go through the `metrics` facade (`jwt_verify_errors_total{reason}`,
//!   `rate_limited_total{operation}`, `rate_limit_backend_errors_total{backend}`), so the host
//!   service picks the exporter.
#![warn(missing_docs)]
// Library code never unwraps; tests may.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod api_key;
mod authenticator;
mod error;
pub mod fetch;
pub mod jwks;
pub mod jwt;
mod mode;
pub mod oauth;
mod principal;
mod rate_limit;
mod scopes;
mod secret;

#[cfg(feature = "axum")]
pub mod http;

pub use api_key::ApiKeyVerifier;
pub use authenticator::{AuthConfig, Authenticator, DEFAULT_AUDIENCE};
pub use error::{AuthError, ConfigError, Reason};
pub use fetch::{FetchUrlError, validate_fetch_url};
pub use jwks::JwksTiming;
pub use mode::{AuthMode, UnknownMode};
pub use principal::{AuthMethod, Principal};
pub use rate_limit::{
    Backend as RateLimitBackend, BackendError, Decision, FailurePolicy, MemoryBuckets,
    OnBackendError, Quota, RateLimiter,
};
#[cfg(feature = "redis")]
pub use rate_limit::{GCRA_SCRIPT, RedisBuckets};
pub use scopes::{Scope, ScopeSet, UnknownScope};
pub use secret::Secret;
