//! The `Origin` allow-list of the MCP streamable HTTP transport (`MCP_ALLOWED_ORIGINS`).
//!
//! MCP 2025-11-25 (transports, security warning): a server MUST validate `Origin` on every
//! streamable-HTTP request and answer 403 to an origin that is not allowed, or a web page could
//! drive a local server through DNS rebinding.
//! A request without `Origin` comes from a non-browser client and is allowed.
//! `Origin: null` (sandboxed frames, `file:` pages, some redirects) names no one and is always
//! refused.
//! Origins compare as RFC 6454 tuples: scheme, host, port (the scheme's default when omitted).

use std::fmt;

use thiserror::Error;

/// The scheme of an allowed origin (browsers send no other to an HTTP server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginScheme {
    /// `http`.
    Http,
    /// `https`.
    Https,
}

impl OriginScheme {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "http" => Some(OriginScheme::Http),
            "https" => Some(OriginScheme::Https),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            OriginScheme::Http => "http",
            OriginScheme::Https => "https",
        }
    }
}

/// Which ports an allowed origin covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginPort {
    /// `:*`: any port.
    Any,
    /// One port (the scheme's default when the entry names none).
    Exact(u16),
}

/// One allowed origin: `scheme://host[:port]`, or `scheme://host:*` for any port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigin {
    scheme: OriginScheme,
    /// Lower case; IPv6 addresses in brackets, as `Origin` writes them.
    host: String,
    port: OriginPort,
}

impl fmt::Display for AllowedOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        match self.port {
            OriginPort::Any => f.write_str(":*"),
            OriginPort::Exact(port) => write!(f, ":{port}"),
        }
    }
}

/// An origin in `MCP_ALLOWED_ORIGINS` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{entry:?} is not an origin such as https://app.example.com or http://localhost:* ({why})")]
pub struct BadOrigin {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// A parsed `Origin` value: scheme, host and the port in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OriginTuple {
    scheme: OriginScheme,
    host: String,
    port: u16,
}

/// Parses `scheme://host[:port]` (nothing after the authority); `Err` says why it is not one.
fn parse_tuple(text: &str) -> Result<OriginTuple, &'static str> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("null") {
        return Err("the opaque origin null names no one");
    }
    let url = url::Url::parse(text).map_err(|_| "not a URL")?;
    let scheme = OriginScheme::parse(url.scheme()).ok_or("the scheme must be http or https")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("an origin has no user name or password");
    }
    if url.query().is_some() || url.fragment().is_some() || url.path() != "/" || text.ends_with('/')
    {
        return Err("an origin has no path, query or fragment");
    }
    let host = url.host_str().ok_or("an origin has a host")?.to_owned();
    let port = url.port_or_known_default().ok_or("an origin has a port")?;
    Ok(OriginTuple { scheme, host, port })
}

impl AllowedOrigin {
    /// Parses one entry: `scheme://host[:port]` or `scheme://host:*`.
    pub fn parse(entry: &str) -> Result<Self, BadOrigin> {
        let bad = |why| BadOrigin {
            entry: entry.to_owned(),
            why,
        };
        let trimmed = entry.trim();
        if let Some(base) = trimmed.strip_suffix(":*") {
            let tuple = parse_tuple(base).map_err(bad)?;
            let authority = base.split_once("://").map_or("", |(_, rest)| rest);
            if authority
                .rsplit(']')
                .next()
                .is_some_and(|tail| tail.contains(':'))
            {
                return Err(bad("give a port or :*, not both"));
            }
            return Ok(AllowedOrigin {
                scheme: tuple.scheme,
                host: tuple.host,
                port: OriginPort::Any,
            });
        }
        let tuple = parse_tuple(trimmed).map_err(bad)?;
        Ok(AllowedOrigin {
            scheme: tuple.scheme,
            host: tuple.host,
            port: OriginPort::Exact(tuple.port),
        })
    }

    fn matches(&self, origin: &OriginTuple) -> bool {
        self.scheme == origin.scheme
            && self.host == origin.host
            && match self.port {
                OriginPort::Any => true,
                OriginPort::Exact(port) => port == origin.port,
            }
    }
}

/// The origins the MCP HTTP transport accepts in an `Origin` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<AllowedOrigin>);

impl AllowedOrigins {
    /// The default: `http` and `https` on `localhost`, `127.0.0.1` and `[::1]`, any port.
    pub fn loopback() -> Self {
        let mut origins = Vec::new();
        for scheme in [OriginScheme::Http, OriginScheme::Https] {
            for host in ["localhost", "127.0.0.1", "[::1]"] {
                origins.push(AllowedOrigin {
                    scheme,
                    host: host.to_owned(),
                    port: OriginPort::Any,
                });
            }
        }
        AllowedOrigins(origins)
    }

    /// Parses a list of entries (`MCP_ALLOWED_ORIGINS`, already split at commas); an empty list
    /// is the loopback default.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, BadOrigin> {
        let origins = entries
            .into_iter()
            .map(AllowedOrigin::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if origins.is_empty() {
            return Ok(AllowedOrigins::loopback());
        }
        Ok(AllowedOrigins(origins))
    }

    /// Whether a request with this `Origin` header value may proceed (`None`: no header, a
    /// non-browser client). `null`, malformed values and other origins may not.
    pub fn allows(&self, origin: Option<&[u8]>) -> bool {
        let Some(raw) = origin else {
            return true;
        };
        let Ok(text) = std::str::from_utf8(raw) else {
            return false;
        };
        match parse_tuple(text) {
            Ok(tuple) => self.0.iter().any(|allowed| allowed.matches(&tuple)),
            Err(_) => false,
        }
    }

    /// The entries, for messages.
    pub fn entries(&self) -> &[AllowedOrigin] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(allowed: &AllowedOrigins, origin: &str, expected: bool) {
        assert_eq!(
            allowed.allows(Some(origin.as_bytes())),
            expected,
            "{origin} against {allowed:?}"
        );
    }

    #[test]
    fn loopback_origins_on_any_port_are_allowed_by_default() {
        let allowed = AllowedOrigins::parse([]).unwrap();
        check(&allowed, "http://localhost:6274", true);
        check(&allowed, "http://127.0.0.1", true);
        check(&allowed, "https://[::1]:8443", true);
        check(&allowed, "HTTP://LOCALHOST:3000", true);
        assert!(allowed.allows(None), "no Origin: a non-browser client");
    }

    #[test]
    fn other_null_and_malformed_origins_are_refused() {
        let allowed = AllowedOrigins::loopback();
        check(&allowed, "http://evil.example.com", false);
        check(&allowed, "null", false);
        check(&allowed, "http://localhost.evil.example.com", false);
        check(&allowed, "http://localhost:3000/path", false);
        check(&allowed, "file://localhost", false);
        check(&allowed, "", false);
        assert!(!allowed.allows(Some(b"http://local\xffhost")));
    }

    #[test]
    fn a_configured_origin_matches_its_default_or_named_port_only() {
        let allowed =
            AllowedOrigins::parse(["https://app.example.com", "http://dev.example.com:8080"])
                .unwrap();
        check(&allowed, "https://app.example.com", true);
        check(&allowed, "https://app.example.com:443", true);
        check(&allowed, "https://app.example.com:444", false);
        check(&allowed, "http://app.example.com", false);
        check(&allowed, "http://dev.example.com:8080", true);
        check(&allowed, "http://dev.example.com", false);
        check(&allowed, "http://localhost:3000", false);
    }

    #[test]
    fn entries_that_are_not_origins_are_rejected() {
        for entry in [
            "null",
            "*",
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/mcp",
            "ftp://app.example.com",
            "https://app.example.com:443:*",
            "https://user@app.example.com",
        ] {
            assert!(AllowedOrigins::parse([entry]).is_err(), "{entry}");
        }
        let wildcard = AllowedOrigins::parse(["https://app.example.com:*"]).unwrap();
        check(&wildcard, "https://app.example.com:9999", true);
    }
}
