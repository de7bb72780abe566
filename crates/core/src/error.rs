//! The one table of error codes that every protocol surface reports.
//!
//! Each crate keeps its own `thiserror` enum and maps it to an [`ErrorCode`] in one `match`.
//! The runtime turns the [`ErrorKind`] into an HTTP status (REST) or puts the code name into the
//! JSON-RPC error `data` (A2A, MCP), so a client sees the same code whatever protocol it speaks.

use std::fmt;

macro_rules! error_codes {
    ($($variant:ident => ($name:literal, $kind:ident)),* $(,)?) => {
        /// A stable, snake_case error code. The exhaustive list of what quietbox reports.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The stable snake_case name, used in problem+json `type` and JSON-RPC `data.code`.
            pub fn name(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name,)* }
            }

            /// The broad class of the error, which decides the HTTP status.
            pub fn kind(self) -> ErrorKind {
                match self { $(ErrorCode::$variant => ErrorKind::$kind,)* }
            }
        }
    };
}

error_codes! {
    InvalidRequest => ("invalid_request", InvalidRequest),
    MalformedBody => ("malformed_body", InvalidRequest),
    PayloadTooLarge => ("payload_too_large", PayloadTooLarge),
    NotFound => ("not_found", NotFound),
    Unauthenticated => ("unauthenticated", Auth),
    Forbidden => ("insufficient_scope", Forbidden),
    RateLimited => ("rate_limited", RateLimited),
    RateLimitUnavailable => ("rate_limit_unavailable", Unavailable),
    IncidentModeActive => ("incident_mode_active", Unavailable),
    MutationsDisabled => ("mutations_disabled", Forbidden),
    OriginNotAllowed => ("origin_not_allowed", Forbidden),
    Conflict => ("conflict", Conflict),
    UpstreamUnavailable => ("upstream_unavailable", BadGateway),
    UpstreamRateLimited => ("upstream_rate_limited", Unavailable),
    UpstreamAuthExpired => ("upstream_auth_expired", BadGateway),
    UpstreamScopeMissing => ("upstream_scope_missing", BadGateway),
    OutboundRefused => ("outbound_refused", InvalidRequest),
    StateCorrupt => ("state_corrupt", Internal),
    StateUnavailable => ("state_unavailable", Unavailable),
    NotReady => ("not_ready", Unavailable),
    RequestTimeout => ("request_timeout", Unavailable),
    Internal => ("internal", Internal),
}

/// The class of an error; each maps to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request was malformed or named something invalid (400).
    InvalidRequest,
    /// The body was larger than allowed (413).
    PayloadTooLarge,
    /// The named thing does not exist (404).
    NotFound,
    /// No or invalid credential (401).
    Auth,
    /// Valid credential, not allowed (403).
    Forbidden,
    /// Too many requests (429).
    RateLimited,
    /// The request conflicts with current state (409).
    Conflict,
    /// A dependency failed (502).
    BadGateway,
    /// Temporarily refused; retry later (503).
    Unavailable,
    /// A bug or broken state on our side (500).
    Internal,
}

impl ErrorKind {
    /// The HTTP status code for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::NotFound => 404,
            ErrorKind::Auth => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::RateLimited => 429,
            ErrorKind::Conflict => 409,
            ErrorKind::BadGateway => 502,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn code_names_are_unique_snake_case() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let name = code.name();
            assert!(seen.insert(name), "duplicate code name {name}");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name} is not snake_case"
            );
        }
    }

    #[test]
    fn auth_errors_map_to_401_and_403() {
        assert_eq!(ErrorCode::Unauthenticated.kind().http_status(), 401);
        assert_eq!(ErrorCode::Forbidden.kind().http_status(), 403);
        assert_eq!(ErrorCode::RateLimited.kind().http_status(), 429);
    }
}
