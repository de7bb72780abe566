//! Fuzzes credential extraction: arbitrary `Authorization` and `X-API-Key` values against a
//! hybrid authenticator (API key, then HS256 JWT). Nothing panics, and nothing but the real key
//! authenticates (a forged token cannot carry a valid HS256 signature).

use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue};
use quietbox_auth::{AuthConfig, AuthMode, Secret};
use quietbox_runtime::scopes::Authenticator;

const KEY: &str = "fuzz-api-key-0123456789abcdef";

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn authenticator() -> &'static Authenticator {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    AUTH.get_or_init(|| {
        let mut config = AuthConfig::new(AuthMode::Hybrid);
        config.api_key = Some(Secret::new(KEY));
        config.jwt_secret = Some(Secret::new("fuzz-hs256-secret-0123456789abcdef"));
        runtime()
            .block_on(Authenticator::new(config))
            .expect("authenticator")
    })
}

/// One fuzz input; panics when a property above does not hold.
pub fn run(data: &[u8]) {
    let auth = authenticator();
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let (authorization, api_key) = data.split_at(split);
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(authorization) {
        headers.insert(http::header::AUTHORIZATION, value);
    }
    if let Some(rest) = api_key.get(1..)
        && let Ok(value) = HeaderValue::from_bytes(rest)
    {
        headers.insert("x-api-key", value);
    }
    let outcome = runtime().block_on(auth.authenticate(&headers));
    if outcome.is_ok() {
        // Only the configured key (as X-API-Key or Bearer) may pass: no JWT can be forged here.
        let key_given = |v: Option<&HeaderValue>, prefix: &str| {
            v.and_then(|v| v.to_str().ok()).is_some_and(|s| {
                s.trim()
                    .strip_prefix(prefix)
                    .is_some_and(|k| k.trim() == KEY)
            })
        };
        assert!(
            key_given(headers.get("x-api-key"), "")
                || key_given(headers.get(http::header::AUTHORIZATION), "Bearer ")
        );
    }
}
