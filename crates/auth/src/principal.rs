//! Who is calling, after authentication.

use crate::error::AuthError;
use crate::scopes::{AppScope, ScopeSet};

/// How the principal authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// The static API key.
    ApiKey,
    /// A JWT (HS256 secret or JWKS).
    Jwt,
    /// An OAuth access token for this resource.
    OAuth,
}

impl AuthMethod {
    /// The method's name, for logs and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ApiKey => "api_key",
            AuthMethod::Jwt => "jwt",
            AuthMethod::OAuth => "oauth",
        }
    }
}

/// An authenticated caller, holding scopes of the application's type `S`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal<S: AppScope> {
    /// Token `sub`, or `api_key` for the API key.
    pub subject: String,
    /// Rate limits and audit records are per tenant.
    pub tenant: String,
    /// What the caller may do.
    pub scopes: ScopeSet<S>,
    /// How it authenticated.
    pub method: AuthMethod,
}

impl<S: AppScope> Principal<S> {
    /// The principal of the static API key: every scope the application declares, tenant
    /// `default`.
    pub fn api_key() -> Self {
        Principal {
            subject: "api_key".to_owned(),
            tenant: "default".to_owned(),
            scopes: ScopeSet::all(),
            method: AuthMethod::ApiKey,
        }
    }

    /// `Ok` when the principal holds `scope`, else a 403 naming it.
    pub fn require(&self, scope: S) -> Result<(), AuthError<S>> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(AuthError::missing_scope(scope))
        }
    }
}
