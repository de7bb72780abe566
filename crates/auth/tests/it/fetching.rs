//! What the authenticator fetches (JWKS, authorization-server metadata): https outside
//! loopback, no redirect to another origin, bodies capped while they stream, keys unfit for
//! signatures skipped, and the discovered issuer compared exactly.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use quietbox_auth::{AuthConfig, AuthMode, ConfigError, validate_fetch_url};
use serde_json::json;

use crate::support::{self, Authenticator, Idp, bearer, claims};

const RESOURCE: &str = "https://mcp.quietbox.test/mcp";

fn jwt_config(jwks_url: &str) -> AuthConfig {
    let mut config = AuthConfig::new(AuthMode::Jwt);
    config.jwks_url = Some(jwks_url.to_owned());
    config
}

fn oauth_config(issuer: &str) -> AuthConfig {
    let mut config = AuthConfig::new(AuthMode::OAuth);
    config.oauth_issuer = Some(issuer.to_owned());
    config.resource_url = Some(RESOURCE.to_owned());
    config
}

fn token(pem: &str, kid: &str) -> String {
    support::rs256(
        pem,
        kid,
        &claims("quietbox", "https://issuer.test", "mail:scan"),
    )
}

async fn reason_with_keys(keys: Vec<serde_json::Value>, pem: &str, kid: &str) -> String {
    let idp = Idp::start(keys).await;
    let auth = Authenticator::new(jwt_config(&idp.jwks_url()))
        .await
        .unwrap();
    match auth.authenticate(&bearer(&token(pem, kid))).await {
        Ok(_) => "accepted".to_owned(),
        Err(e) => e.reason().to_owned(),
    }
}

#[tokio::test]
async fn a_plain_http_jwks_url_outside_loopback_is_refused() {
    let err = Authenticator::new(jwt_config("http://idp.example/jwks.json"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConfigError::Invalid("AUTH_JWKS_URL", _)),
        "{err}"
    );
    assert!(err.to_string().contains("https"), "{err}");
    // The same rule, for a configuration check to call.
    assert!(validate_fetch_url("http://idp.example/jwks.json").is_err());
    assert!(validate_fetch_url("https://idp.example/jwks.json").is_ok());
    assert!(validate_fetch_url("http://127.0.0.1:8080/jwks.json").is_ok());
}

#[tokio::test]
async fn a_plain_http_issuer_or_jwks_uri_outside_loopback_is_refused() {
    let err = Authenticator::new(oauth_config("http://idp.example"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConfigError::Invalid("MCP_OAUTH_ISSUER", _)),
        "{err}"
    );
    let idp = Idp::start(vec![]).await;
    *idp.metadata.lock().unwrap() =
        Some(json!({"issuer": idp.base, "jwks_uri": "http://idp.example/jwks.json"}));
    let err = Authenticator::new(oauth_config(&idp.base))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("jwks_uri"), "{err}");
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_not_followed() {
    // The keys at the other origin would verify the token if the redirect were followed.
    let elsewhere = Idp::start(vec![support::rsa_jwk(support::RSA1, "k1")]).await;
    let (base, hits) = support::redirector(elsewhere.jwks_url()).await;
    let auth = Authenticator::new(jwt_config(&format!("{base}/jwks.json")))
        .await
        .unwrap();
    let err = auth
        .authenticate(&bearer(&token(support::RSA1, "k1")))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "jwks_unavailable");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        elsewhere.fetch_count(),
        0,
        "the other origin was never asked"
    );
}

#[tokio::test]
async fn a_redirect_within_the_origin_is_followed() {
    let idp = Idp::start(vec![support::rsa_jwk(support::RSA1, "k1")]).await;
    let auth = Authenticator::new(jwt_config(&format!("{}/moved/jwks.json", idp.base)))
        .await
        .unwrap();
    auth.authenticate(&bearer(&token(support::RSA1, "k1")))
        .await
        .unwrap();
    assert_eq!(idp.fetch_count(), 1);
}

#[tokio::test]
async fn a_discovery_redirect_to_another_origin_is_not_followed() {
    let elsewhere = Idp::start(vec![]).await;
    let (base, _) = support::redirector(format!(
        "{}/.well-known/oauth-authorization-server",
        elsewhere.base
    ))
    .await;
    let err = Authenticator::new(oauth_config(&base)).await.unwrap_err();
    assert!(err.to_string().contains("another origin"), "{err}");
}

#[tokio::test]
async fn an_endless_jwks_body_is_cut_at_the_cap() {
    let (base, written) = support::endless(None).await;
    let auth = Authenticator::new(jwt_config(&format!("{base}/jwks.json")))
        .await
        .unwrap();
    let started = Instant::now();
    let err = auth
        .authenticate(&bearer(&token(support::RSA1, "k1")))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "jwks_unavailable");
    // Reading until the 5 s fetch timeout would take 5 s and gigabytes.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = written.load(Ordering::SeqCst);
    assert!(sent < 64 * 1024 * 1024, "the server wrote {sent} bytes");
}

#[tokio::test]
async fn a_huge_declared_jwks_length_is_refused_before_reading() {
    // The server declares 1 GiB, sends a few bytes and then waits: only the declared length can
    // stop the fetch before the 5 s timeout.
    let (base, _) = support::endless(Some(1 << 30)).await;
    let auth = Authenticator::new(jwt_config(&format!("{base}/jwks.json")))
        .await
        .unwrap();
    let started = Instant::now();
    let err = auth
        .authenticate(&bearer(&token(support::RSA1, "k1")))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "jwks_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_endless_metadata_document_is_cut_at_the_cap() {
    let (base, _) = support::endless(None).await;
    let started = Instant::now();
    let err = Authenticator::new(oauth_config(&base)).await.unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_1024_bit_rsa_key_is_not_used() {
    let weak = support::rsa_jwk(support::RSA1024, "weak");
    assert_eq!(
        reason_with_keys(vec![weak], support::RSA1024, "weak").await,
        "unknown_kid"
    );
}

#[tokio::test]
async fn keys_not_meant_for_verifying_signatures_are_not_used() {
    let mut enc = support::rsa_jwk(support::RSA1, "k1");
    enc["use"] = "enc".into();
    assert_eq!(
        reason_with_keys(vec![enc], support::RSA1, "k1").await,
        "unknown_kid"
    );
    let mut encrypt_only = support::rsa_jwk(support::RSA1, "k1");
    encrypt_only["key_ops"] = json!(["encrypt", "wrapKey"]);
    assert_eq!(
        reason_with_keys(vec![encrypt_only], support::RSA1, "k1").await,
        "unknown_kid"
    );
    // `verify` in `key_ops`, and no `use` at all, are fine.
    let mut verify = support::rsa_jwk(support::RSA1, "k1");
    verify["key_ops"] = json!(["verify"]);
    verify.as_object_mut().unwrap().remove("use");
    assert_eq!(
        reason_with_keys(vec![verify], support::RSA1, "k1").await,
        "accepted"
    );
}

#[tokio::test]
async fn a_discovered_issuer_differing_by_a_trailing_slash_is_refused_naming_both() {
    let idp = Idp::start(vec![support::rsa_jwk(support::RSA1, "k1")]).await;
    let configured = format!("{}/", idp.base);
    let err = Authenticator::new(oauth_config(&configured))
        .await
        .unwrap_err();
    assert!(matches!(err, ConfigError::IssuerMismatch { .. }), "{err:?}");
    let line = err.to_string();
    assert!(!line.contains('\n'), "{line}");
    assert!(line.contains(&format!("{configured:?}")), "{line}");
    assert!(line.contains(&format!("{:?}", idp.base)), "{line}");
    // The exact value works.
    Authenticator::new(oauth_config(&idp.base)).await.unwrap();
}

#[tokio::test]
async fn a_configured_proxy_is_used_for_fetches() {
    // The "proxy" answers every request with a redirect it counts; reaching it proves the
    // fetch went through it (without the setting, fetches connect directly).
    let idp = Idp::start(vec![support::rsa_jwk(support::RSA1, "k1")]).await;
    let (proxy, hits) = support::redirector("http://127.0.0.1:9/".to_owned()).await;
    let mut config = jwt_config(&idp.jwks_url());
    config.proxy = Some(proxy);
    let auth = Authenticator::new(config).await.unwrap();
    let _ = auth
        .authenticate(&bearer(&token(support::RSA1, "k1")))
        .await;
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(idp.fetch_count(), 0);
    let auth = Authenticator::new(jwt_config(&idp.jwks_url()))
        .await
        .unwrap();
    auth.authenticate(&bearer(&token(support::RSA1, "k1")))
        .await
        .unwrap();
    assert_eq!(idp.fetch_count(), 1);
}
