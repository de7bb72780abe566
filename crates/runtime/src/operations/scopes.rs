//! quietbox's five scopes (DESIGN.md §3), declared beside the operation table that says which
//! operation needs which: quietbox's own declaration of [`quietbox_auth::AppScope`]. The auth
//! crate names no scope of its own; these aliases default its generic types to this one, so
//! quietbox's code writes `Principal`, `AuthError`, … without naming the scope type.

use std::fmt;
use std::str::FromStr;

use quietbox_auth::AppScope;

/// A quietbox permission (DESIGN.md §3: one table for REST, A2A and MCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Free/busy and free slots.
    AvailabilityRead,
    /// Inbox scan and triage.
    MailScan,
    /// Candidate discovery, unsubscribe history, compliance.
    UnsubscribeRead,
    /// Executing an unsubscribe, sender decisions.
    UnsubscribeExecute,
    /// Digest scan and send.
    UnsubscribeDigest,
}

impl Scope {
    /// Every scope, in table order.
    pub const ALL: [Scope; 5] = [
        Scope::AvailabilityRead,
        Scope::MailScan,
        Scope::UnsubscribeRead,
        Scope::UnsubscribeExecute,
        Scope::UnsubscribeDigest,
    ];

    /// The scope as written in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::AvailabilityRead => "availability:read",
            Scope::MailScan => "mail:scan",
            Scope::UnsubscribeRead => "unsubscribe:read",
            Scope::UnsubscribeExecute => "unsubscribe:execute",
            Scope::UnsubscribeDigest => "unsubscribe:digest",
        }
    }
}

impl AppScope for Scope {
    const ALL: &'static [Self] = &Scope::ALL;

    fn as_str(self) -> &'static str {
        Scope::as_str(self)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the five scopes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        <Scope as AppScope>::parse(s).ok_or_else(|| UnknownScope(s.to_owned()))
    }
}

/// Marker types for `Authorized<R>`, one per scope.
pub mod scope {
    use super::Scope;
    use quietbox_auth::RequiredScope;

    macro_rules! markers {
        ($($name:ident => $scope:ident),* $(,)?) => {$(
            #[doc = concat!("Requires `", stringify!($scope), "`.")]
            #[derive(Debug, Clone, Copy)]
            pub struct $name;
            impl RequiredScope for $name {
                type Scope = Scope;
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

/// A set of quietbox scopes.
pub type ScopeSet<S = Scope> = quietbox_auth::ScopeSet<S>;
/// A caller with quietbox scopes.
pub type Principal<S = Scope> = quietbox_auth::Principal<S>;
/// A refusal naming quietbox scopes.
pub type AuthError<S = Scope> = quietbox_auth::AuthError<S>;
/// An authenticator granting quietbox scopes.
pub type Authenticator<S = Scope> = quietbox_auth::Authenticator<S>;
/// A rate limiter answering with quietbox's [`AuthError`].
pub type RateLimiter<S = Scope> = quietbox_auth::RateLimiter<S>;
/// A rendered refusal of quietbox's axum routes.
pub type AuthRejection = quietbox_auth::http::Rejection<Scope>;
