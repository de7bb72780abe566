//! What the auth crate fetches (the JWKS, the authorization server's metadata) and how.
//!
//! - **https only**: plain `http` is accepted only for loopback hosts (`127.0.0.0/8`, `::1`,
//!   `localhost`), so tests and a sidecar IdP keep working while a network attacker cannot swap
//!   the keys. [`validate_fetch_url`] is the one check; configuration layers call it too, so a
//!   configuration check refuses what start-up would refuse.
//! - **No redirect to another origin**: the client built by [`client`] follows at most
//!   [`MAX_REDIRECTS`] redirects, all within the origin of the first URL; every fetch also checks
//!   that the answer came from the requested origin, so a caller-supplied client that follows
//!   redirects cannot smuggle in another origin's keys either.
//! - **Bodies capped while streaming**: a declared `Content-Length` over the cap is refused before
//!   the body is read, and the body is read chunk by chunk, stopping as soon as it passes the cap.
//! - **No proxy from the environment**: `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY` are ignored; a
//!   proxy is used only when configured explicitly ([`AuthConfig::proxy`](crate::AuthConfig)).

use url::{Host, Url};

/// Most redirects followed by one fetch (all within the first URL's origin).
pub const MAX_REDIRECTS: usize = 3;

/// Why a URL may not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchUrlError {
    /// The value does not parse as a URL.
    #[error("{url:?} is not a URL ({detail})")]
    NotAUrl {
        /// The value.
        url: String,
        /// The parser's complaint.
        detail: String,
    },
    /// Neither https, nor http to a loopback host.
    #[error(
        "{0:?} must be an https URL (plain http is allowed only for loopback hosts: 127.0.0.0/8, ::1, localhost)"
    )]
    NotHttps(String),
}

/// Checks that `url` may be fetched for keys or metadata: `https://` with a host, or `http://` to
/// a loopback host (`127.0.0.0/8`, `::1`, `localhost`). Returns the parsed URL.
pub fn validate_fetch_url(url: &str) -> Result<Url, FetchUrlError> {
    let parsed = Url::parse(url.trim()).map_err(|e| FetchUrlError::NotAUrl {
        url: url.to_owned(),
        detail: e.to_string(),
    })?;
    if is_allowed(&parsed) {
        Ok(parsed)
    } else {
        Err(FetchUrlError::NotHttps(url.to_owned()))
    }
}

fn is_allowed(url: &Url) -> bool {
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => is_loopback(url),
        _ => false,
    }
}

/// Whether `url`'s host is a loopback host: `127.0.0.0/8`, `::1` (also as `::ffff:127.x.y.z`), or
/// `localhost`.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(name)) => {
            let name = name.strip_suffix('.').unwrap_or(name);
            name.eq_ignore_ascii_case("localhost")
        }
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => false,
    }
}

#[cfg(feature = "jwks")]
pub(crate) use client::*;

/// The client and the capped fetch (feature `jwks`).
#[cfg(feature = "jwks")]
mod client {
    use std::time::Duration;

    use super::*;
    use crate::error::ConfigError;

    /// The HTTP client for JWKS and metadata fetches: 10 s timeout, redirects only within the first
    /// URL's origin (at most [`MAX_REDIRECTS`]), no proxy unless `proxy` names one (the proxy
    /// environment variables are ignored).
    pub fn client(proxy: Option<&str>) -> Result<reqwest::Client, ConfigError> {
        let builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .redirect(redirect_policy());
        let builder = match proxy {
            None => builder.no_proxy(),
            Some(proxy) => builder.proxy(
                reqwest::Proxy::all(proxy)
                    .map_err(|e| ConfigError::Invalid("proxy", format!("{proxy:?}: {e}")))?,
            ),
        };
        builder.build().map_err(|e| {
            ConfigError::Invalid("proxy", format!("cannot build the HTTP client: {e}"))
        })
    }

    fn redirect_policy() -> reqwest::redirect::Policy {
        reqwest::redirect::Policy::custom(|attempt| {
            let Some(first) = attempt.previous().first() else {
                return attempt.error("redirect without an original URL");
            };
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            if attempt.url().origin() != first.origin() {
                let error = format!(
                    "refused a redirect from {} to another origin ({})",
                    first.origin().ascii_serialization(),
                    attempt.url().origin().ascii_serialization()
                );
                return attempt.error(error);
            }
            if !is_allowed(attempt.url()) {
                return attempt.error("refused a redirect to a URL that is not https");
            }
            attempt.follow()
        })
    }

    /// Why a fetch failed.
    #[derive(Debug, thiserror::Error)]
    pub(crate) enum FetchError {
        /// The URL may not be fetched.
        #[error(transparent)]
        Url(#[from] FetchUrlError),
        /// Transport failure (connection, timeout, refused redirect…).
        #[error("{0}")]
        Transport(String),
        /// A non-2xx answer.
        #[error("status {0}")]
        Status(reqwest::StatusCode),
        /// The answer came from another origin than the one asked.
        #[error("the answer came from another origin ({0})")]
        CrossOrigin(String),
        /// The body is larger than the cap.
        #[error("body larger than {0} bytes")]
        TooLarge(usize),
    }

    /// GETs `url` and returns its body, refusing non-2xx answers, answers from another origin, and
    /// bodies over `cap` bytes (checked on the declared length and while streaming).
    pub(crate) async fn get_capped(
        client: &reqwest::Client,
        url: &str,
        cap: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>, FetchError> {
        let url = validate_fetch_url(url)?;
        let mut response = client
            .get(url.clone())
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| FetchError::Transport(error_chain(&e)))?;
        if response.url().origin() != url.origin() {
            return Err(FetchError::CrossOrigin(
                response.url().origin().ascii_serialization(),
            ));
        }
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status()));
        }
        if response
            .content_length()
            .is_some_and(|length| length > cap as u64)
        {
            return Err(FetchError::TooLarge(cap));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| FetchError::Transport(error_chain(&e)))?
        {
            if body.len().saturating_add(chunk.len()) > cap {
                return Err(FetchError::TooLarge(cap));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The error and its sources on one line (reqwest's own message hides the cause, such as a
    /// refused redirect).
    fn error_chain(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_is_accepted_and_http_only_for_loopback_hosts() {
        for ok in [
            "https://idp.example.com/jwks.json",
            "http://127.0.0.1:8080/jwks",
            "http://127.8.9.10/jwks",
            "http://[::1]:9000/jwks",
            "http://localhost/jwks",
            "http://LOCALHOST./jwks",
        ] {
            assert!(validate_fetch_url(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://idp.example/jwks.json",
            "http://10.0.0.1/jwks",
            "http://localhost.evil.example/jwks",
            "http://128.0.0.1/jwks",
            "ftp://idp.example.com/jwks",
            "file:///etc/passwd",
        ] {
            assert!(
                matches!(validate_fetch_url(refused), Err(FetchUrlError::NotHttps(_))),
                "{refused}"
            );
        }
        assert!(matches!(
            validate_fetch_url("not a url"),
            Err(FetchUrlError::NotAUrl { .. })
        ));
    }

    #[test]
    fn the_refusal_names_the_url_and_the_rule() {
        let message = validate_fetch_url("http://idp.example/jwks.json")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("http://idp.example/jwks.json"),
            "{message}"
        );
        assert!(message.contains("https"), "{message}");
    }

    #[cfg(feature = "jwks")]
    #[test]
    fn a_configured_proxy_must_be_a_url() {
        assert!(client(None).is_ok());
        assert!(client(Some("http://127.0.0.1:3128")).is_ok());
        assert!(client(Some("::not a proxy::")).is_err());
    }
}
