//! Authentication modes.

use std::fmt;
use std::str::FromStr;

/// How credentials are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// A static shared key (`X-API-Key`, or `Authorization: Bearer <key>`).
    ApiKey,
    /// JWT bearer tokens (HS256 secret and/or JWKS).
    Jwt,
    /// API key first, then JWT.
    Hybrid,
    /// OAuth 2.1 resource server: JWTs from a discovered issuer, audience = this resource.
    OAuth,
}

impl AuthMode {
    /// The mode as configured (`api_key`, `jwt`, `hybrid`, `oauth`).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::ApiKey => "api_key",
            AuthMode::Jwt => "jwt",
            AuthMode::Hybrid => "hybrid",
            AuthMode::OAuth => "oauth",
        }
    }

    /// Whether the mode accepts the API key.
    pub fn uses_api_key(self) -> bool {
        matches!(self, AuthMode::ApiKey | AuthMode::Hybrid)
    }

    /// Whether the mode accepts JWTs.
    pub fn uses_jwt(self) -> bool {
        matches!(self, AuthMode::Jwt | AuthMode::Hybrid | AuthMode::OAuth)
    }
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not one of api_key, jwt, hybrid, oauth")]
pub struct UnknownMode(pub String);

impl FromStr for AuthMode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "api_key" => Ok(AuthMode::ApiKey),
            "jwt" => Ok(AuthMode::Jwt),
            "hybrid" => Ok(AuthMode::Hybrid),
            "oauth" => Ok(AuthMode::OAuth),
            _ => Err(UnknownMode(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_from_their_names() {
        for mode in [
            AuthMode::ApiKey,
            AuthMode::Jwt,
            AuthMode::Hybrid,
            AuthMode::OAuth,
        ] {
            assert_eq!(mode.as_str().parse::<AuthMode>(), Ok(mode));
        }
        assert!("basic".parse::<AuthMode>().is_err());
    }
}
