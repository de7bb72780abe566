//! Redaction of credentials before anything reaches a log line.
//!
//! One place decides what is secret (DESIGN.md §6): the headers `authorization`, `cookie`,
//! `set-cookie`, `x-api-key`, and the query keys `token`, `key`, `code` (plus their common
//! spellings such as `access_token` and `api_key`). The request-logging layer only ever logs
//! through these functions, so a new log line cannot forget them.

use std::borrow::Cow;

use http::HeaderName;

/// The placeholder written instead of a secret.
pub const REDACTED: &str = "[redacted]";

/// Headers whose values are never logged.
pub const SENSITIVE_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "proxy-authorization",
];

/// Whether a header's value must never be logged.
pub fn is_sensitive_header(name: &HeaderName) -> bool {
    SENSITIVE_HEADERS.contains(&name.as_str())
}

/// Whether a query key's value must never be logged.
pub fn is_sensitive_query_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    matches!(
        key.as_str(),
        "token"
            | "key"
            | "code"
            | "access_token"
            | "refresh_token"
            | "id_token"
            | "api_key"
            | "apikey"
            | "client_secret"
            | "password"
    )
}

/// The query string with the values of sensitive keys replaced by [`REDACTED`].
/// Keys are matched after percent-decoding, so `%74oken=` is caught too.
pub fn redact_query(query: &str) -> Cow<'_, str> {
    if !query.split('&').any(sensitive_pair) {
        return Cow::Borrowed(query);
    }
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| {
            if sensitive_pair(pair) {
                let key = pair.split('=').next().unwrap_or_default();
                format!("{key}={REDACTED}")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    Cow::Owned(parts.join("&"))
}

fn sensitive_pair(pair: &str) -> bool {
    let raw_key = pair.split('=').next().unwrap_or_default();
    let decoded: String = url::form_urlencoded::parse(raw_key.as_bytes())
        .next()
        .map(|(k, _)| k.into_owned())
        .unwrap_or_default();
    is_sensitive_query_key(&decoded)
}

/// A path and query fit for a log line.
pub fn loggable_uri(uri: &http::Uri) -> String {
    match uri.query() {
        Some(query) => format!("{}?{}", uri.path(), redact_query(query)),
        None => uri.path().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_query_values_are_replaced() {
        assert_eq!(
            redact_query("a=1&token=abc&key=k2&code=xyz&b=2"),
            "a=1&token=[redacted]&key=[redacted]&code=[redacted]&b=2"
        );
    }

    #[test]
    fn percent_encoded_and_upper_case_keys_are_caught() {
        assert_eq!(redact_query("%74oken=abc"), "%74oken=[redacted]");
        assert_eq!(redact_query("TOKEN=abc"), "TOKEN=[redacted]");
        assert_eq!(redact_query("access_token=abc"), "access_token=[redacted]");
    }

    #[test]
    fn harmless_queries_are_left_alone() {
        assert!(matches!(
            redact_query("since=2024-01-01&limit=5"),
            Cow::Borrowed(_)
        ));
        assert_eq!(redact_query(""), "");
        assert_eq!(redact_query("keyword=x"), "keyword=x");
    }

    #[test]
    fn loggable_uri_keeps_the_path_and_hides_secrets() {
        let uri: http::Uri = "/v1/availability?token=s3cret&tz=UTC".parse().unwrap();
        assert_eq!(
            loggable_uri(&uri),
            "/v1/availability?token=[redacted]&tz=UTC"
        );
    }

    #[test]
    fn credential_headers_are_sensitive() {
        for name in ["authorization", "cookie", "set-cookie", "x-api-key"] {
            assert!(
                is_sensitive_header(&HeaderName::from_static(name)),
                "{name}"
            );
        }
        assert!(!is_sensitive_header(&HeaderName::from_static("user-agent")));
    }
}
