//! Why a request was refused, and why an authenticator could not be built.
//!
//! [`AuthError`] separates 401 (no or invalid credential) from 403 (valid credential, scope
//! missing) and 429 (rate limited). Each 401 carries a stable [`Reason`] label, which is also the
//! `reason` label of `jwt_verify_errors_total`. No variant holds a credential.

use std::time::Duration;

use crate::scopes::AppScope;

/// Why a credential was not accepted (the `reason` metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No credential at all.
    Missing,
    /// Not a well-formed credential or token.
    Malformed,
    /// The API key does not match.
    BadApiKey,
    /// `exp` is past (beyond leeway).
    Expired,
    /// `nbf` is in the future (beyond leeway).
    NotYetValid,
    /// The signature does not verify.
    BadSignature,
    /// `aud` is not the expected audience.
    WrongAudience,
    /// `iss` is not the expected issuer.
    WrongIssuer,
    /// No key with the token's `kid`.
    UnknownKid,
    /// The token is larger than the limit; it was not decoded.
    TooLarge,
    /// The token's algorithm is not the one its key allows (`none`, HS256 with an RSA key…).
    BadAlgorithm,
    /// The JWKS could not be fetched and no usable cached keys remain.
    JwksUnavailable,
    /// A required claim (`exp`, `aud`, `sub`, and `iss` when an issuer is configured) is missing.
    MissingClaim,
    /// `iat` is in the future (beyond leeway): the token claims to be issued later than now.
    IssuedInFuture,
    /// In `oauth` mode, the header's `typ` is present and is not `at+jwt` (RFC 9068).
    WrongTokenType,
}

impl Reason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Malformed => "malformed",
            Reason::BadApiKey => "bad_api_key",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::BadSignature => "bad_signature",
            Reason::WrongAudience => "wrong_audience",
            Reason::WrongIssuer => "wrong_issuer",
            Reason::UnknownKid => "unknown_kid",
            Reason::TooLarge => "too_large",
            Reason::BadAlgorithm => "bad_algorithm",
            Reason::JwksUnavailable => "jwks_unavailable",
            Reason::MissingClaim => "missing_claim",
            Reason::IssuedInFuture => "issued_in_future",
            Reason::WrongTokenType => "wrong_token_type",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Reason::Missing => "no credential was presented",
            Reason::Malformed => "the credential is malformed",
            Reason::BadApiKey => "the API key is not valid",
            Reason::Expired => "the token has expired",
            Reason::NotYetValid => "the token is not valid yet",
            Reason::BadSignature => "the token signature is invalid",
            Reason::WrongAudience => "the token is not meant for this service (audience)",
            Reason::WrongIssuer => "the token comes from an untrusted issuer",
            Reason::UnknownKid => "the token's signing key is unknown",
            Reason::TooLarge => "the token is too large",
            Reason::BadAlgorithm => "the token's algorithm is not accepted",
            Reason::JwksUnavailable => "the signing keys cannot be fetched right now",
            Reason::MissingClaim => "the token lacks a required claim",
            Reason::IssuedInFuture => "the token claims to be issued in the future (iat)",
            Reason::WrongTokenType => "the token is not an access token (typ must be at+jwt)",
        }
    }
}

/// A refused request; `S` is the application's scope type (see [`AppScope`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError<S: AppScope> {
    /// 401: no valid credential.
    Unauthenticated(Reason),
    /// 403: valid credential without the scope.
    Forbidden(S),
    /// 429: too many requests for this tenant and operation.
    RateLimited {
        /// The limited operation.
        operation: String,
        /// How long to wait.
        retry_after: Duration,
    },
    /// 503: the shared rate-limit backend cannot answer and the failure policy refuses this
    /// operation rather than let it through unlimited.
    LimiterUnavailable {
        /// The operation that was refused.
        operation: String,
    },
}

impl<S: AppScope> std::fmt::Display for AuthError<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Unauthenticated(reason) => {
                write!(f, "unauthenticated: {}", reason.describe())
            }
            AuthError::Forbidden(scope) => write!(f, "missing scope {}", scope.as_str()),
            AuthError::RateLimited {
                operation,
                retry_after,
            } => write!(f, "rate limited on {operation}; retry in {retry_after:?}"),
            AuthError::LimiterUnavailable { operation } => write!(
                f,
                "the rate limiter cannot check {operation} right now (its backend is unavailable); retry shortly"
            ),
        }
    }
}

impl<S: AppScope> std::error::Error for AuthError<S> {}

impl<S: AppScope> AuthError<S> {
    /// A 403 for a missing scope.
    pub fn missing_scope(scope: S) -> Self {
        AuthError::Forbidden(scope)
    }

    /// The HTTP status: 401, 403, 429 or 503.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Unauthenticated(_) => 401,
            AuthError::Forbidden(_) => 403,
            AuthError::RateLimited { .. } => 429,
            AuthError::LimiterUnavailable { .. } => 503,
        }
    }

    /// A stable label: the 401 reason, `insufficient_scope`, `rate_limited` or
    /// `rate_limit_unavailable`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Unauthenticated(reason) => reason.as_str(),
            AuthError::Forbidden(_) => "insufficient_scope",
            AuthError::RateLimited { .. } => "rate_limited",
            AuthError::LimiterUnavailable { .. } => "rate_limit_unavailable",
        }
    }

    /// The error code shared with the rest of quietbox (`unauthenticated`,
    /// `insufficient_scope`, `rate_limited`, `rate_limit_unavailable`).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Unauthenticated(_) => "unauthenticated",
            AuthError::Forbidden(_) => "insufficient_scope",
            AuthError::RateLimited { .. } => "rate_limited",
            AuthError::LimiterUnavailable { .. } => "rate_limit_unavailable",
        }
    }
}

/// Why an [`Authenticator`](crate::Authenticator) could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required setting is missing or empty.
    #[error("{0} is required for auth mode {1}")]
    Missing(&'static str, &'static str),
    /// A setting has an unusable value.
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
    /// The authorization server's metadata names another issuer than the configured one
    /// (RFC 8414 §3.3 asks for an exact match: a trailing slash is a difference).
    #[error(
        "the authorization server metadata at {url} names issuer {discovered:?}, but MCP_OAUTH_ISSUER is {configured:?}; the two must be identical, character for character (RFC 8414 §3.3)"
    )]
    IssuerMismatch {
        /// The metadata document's URL.
        url: String,
        /// The configured issuer.
        configured: String,
        /// The issuer the document names.
        discovered: String,
    },
    /// OAuth metadata discovery failed.
    #[error("could not discover the authorization server metadata at {url}: {detail}")]
    Discovery {
        /// The issuer URL tried.
        url: String,
        /// What went wrong.
        detail: String,
    },
}
