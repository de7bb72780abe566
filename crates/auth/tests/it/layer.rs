//! The axum layer and extractors, driven with `oneshot`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use http_body_util::BodyExt;
use quietbox_auth::http::{AuthLayer, Authorized, protected_resource_routes};
use quietbox_auth::{AuthConfig, AuthMode, Reason, Secret};
use tower::ServiceExt;

use crate::support::{self, AuthError, Authenticator, Idp, TestScope, scope};

async fn scan(Authorized(who, ..): Authorized<scope::MailScan>) -> String {
    format!("scan for {}", who.tenant)
}

async fn unsubscribe(Authorized(..): Authorized<scope::UnsubscribeExecute>) -> &'static str {
    "done"
}

fn app(auth: Arc<Authenticator>) -> Router {
    Router::new()
        .route("/scan", get(scan))
        .route("/unsubscribe", get(unsubscribe))
        .layer(AuthLayer::new(auth.clone()))
        .merge(protected_resource_routes(auth))
}

async fn call(
    app: &Router,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, serde_json::Value) {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::String(
        String::from_utf8_lossy(&bytes).into(),
    ));
    (status, headers, body)
}

#[tokio::test]
async fn missing_credentials_get_a_401_problem_with_a_challenge() {
    let mut config = AuthConfig::new(AuthMode::Hybrid);
    config.api_key = Some(Secret::new("k-0123456789"));
    config.jwt_secret = Some(Secret::new("s-0123456789abcdef0123456789"));
    let app = app(Arc::new(Authenticator::new(config).await.unwrap()));
    let (status, headers, body) = call(&app, "/scan", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer realm=\"quietbox\"")
    );
    assert_eq!(body["code"], "unauthenticated");
    assert_eq!(body["reason"], "missing");
    let (status, _, body) = call(&app, "/scan", &[("x-api-key", "k-0123456789")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "scan for default");
}

#[tokio::test]
async fn a_token_without_the_route_scope_gets_a_403_naming_it() {
    let secret = "s-0123456789abcdef0123456789";
    let mut config = AuthConfig::new(AuthMode::Jwt);
    config.jwt_secret = Some(Secret::new(secret));
    let app = app(Arc::new(Authenticator::new(config).await.unwrap()));
    let token = support::hs256(secret, &support::claims("quietbox", "any", "mail:scan"));
    let auth_header = format!("Bearer {token}");
    let (status, _, body) = call(&app, "/scan", &[("authorization", &auth_header)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "scan for acme");
    let (status, headers, body) =
        call(&app, "/unsubscribe", &[("authorization", &auth_header)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["scope"], "unsubscribe:execute");
    assert_eq!(body["code"], "insufficient_scope");
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"unsubscribe:execute\""),
        "{challenge}"
    );
}

#[tokio::test]
async fn oauth_mode_points_clients_to_the_protected_resource_metadata() {
    let idp = Idp::start(vec![support::rsa_jwk(support::RSA1, "k1")]).await;
    let resource = "https://mcp.quietbox.test/mcp";
    let mut config = AuthConfig::new(AuthMode::OAuth);
    config.oauth_issuer = Some(idp.base.clone());
    config.resource_url = Some(resource.to_owned());
    let app = app(Arc::new(Authenticator::new(config).await.unwrap()));
    let (status, headers, _) = call(&app, "/scan", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers["www-authenticate"],
        "Bearer resource_metadata=\"https://mcp.quietbox.test/.well-known/oauth-protected-resource\""
    );
    let (status, _, document) = call(&app, "/.well-known/oauth-protected-resource", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["resource"], resource);
    assert_eq!(document["authorization_servers"][0], idp.base.as_str());
    let (status, _, _) = call(&app, "/.well-known/oauth-protected-resource/mcp", &[]).await;
    assert_eq!(status, StatusCode::OK);
    // A token minted for this resource by the issuer is accepted.
    let token = support::access_token(
        support::RSA1,
        "k1",
        &support::claims(resource, &idp.base, "mail:scan"),
    );
    let (status, _, _) = call(
        &app,
        "/scan",
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn oauth_challenges_name_scopes_and_the_403_asks_for_a_step_up() {
    let idp = Idp::start(vec![support::rsa_jwk(support::RSA1, "k1")]).await;
    let mut config = AuthConfig::new(AuthMode::OAuth);
    config.oauth_issuer = Some(idp.base.clone());
    config.resource_url = Some("https://mcp.quietbox.test/mcp".to_owned());
    let auth = Authenticator::new(config).await.unwrap();
    let metadata =
        "resource_metadata=\"https://mcp.quietbox.test/.well-known/oauth-protected-resource\"";
    assert_eq!(
        auth.resource_metadata_url(),
        Some("https://mcp.quietbox.test/.well-known/oauth-protected-resource")
    );
    assert_eq!(
        auth.insufficient_scope_challenge(&[TestScope::UnsubscribeExecute]),
        format!("Bearer error=\"insufficient_scope\", scope=\"unsubscribe:execute\", {metadata}")
    );
    assert_eq!(
        auth.insufficient_scope_challenge(&[TestScope::MailScan, TestScope::UnsubscribeRead]),
        format!(
            "Bearer error=\"insufficient_scope\", scope=\"mail:scan unsubscribe:read\", {metadata}"
        )
    );
    assert_eq!(
        auth.challenge(&AuthError::Forbidden(TestScope::MailScan)),
        Some(format!(
            "Bearer error=\"insufficient_scope\", scope=\"mail:scan\", {metadata}"
        ))
    );
    assert_eq!(
        auth.challenge_with_scopes(
            &AuthError::Unauthenticated(Reason::Expired),
            &[TestScope::MailScan, TestScope::UnsubscribeRead]
        ),
        Some(format!(
            "Bearer error=\"invalid_token\", error_description=\"expired\", \
             scope=\"mail:scan unsubscribe:read\", {metadata}"
        ))
    );
    assert_eq!(
        auth.challenge_with_scopes(
            &AuthError::Unauthenticated(Reason::Missing),
            &[TestScope::MailScan]
        ),
        Some(format!("Bearer scope=\"mail:scan\", {metadata}"))
    );
    // Outside oauth mode the plain challenges stay scope-less unless asked.
    let mut config = AuthConfig::new(AuthMode::ApiKey);
    config.api_key = Some(Secret::new("k-0123456789"));
    let plain = Authenticator::new(config).await.unwrap();
    assert_eq!(
        plain.challenge(&AuthError::Unauthenticated(Reason::Missing)),
        Some("Bearer realm=\"quietbox\"".to_owned())
    );
    assert_eq!(
        plain.insufficient_scope_challenge(&[TestScope::MailScan]),
        "Bearer realm=\"quietbox\", error=\"insufficient_scope\", scope=\"mail:scan\""
    );
}

#[tokio::test]
async fn a_layer_naming_scopes_puts_them_in_the_401_challenge() {
    let idp = Idp::start(vec![support::rsa_jwk(support::RSA1, "k1")]).await;
    let mut config = AuthConfig::new(AuthMode::OAuth);
    config.oauth_issuer = Some(idp.base.clone());
    config.resource_url = Some("https://mcp.quietbox.test/mcp".to_owned());
    let auth = Arc::new(Authenticator::new(config).await.unwrap());
    let app = Router::new()
        .route("/scan", get(scan))
        .layer(AuthLayer::new(auth).naming_scopes(<TestScope as quietbox_auth::AppScope>::ALL));
    let (status, headers, _) = call(&app, "/scan", &[("authorization", "Bearer not.a.jwt")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers["www-authenticate"],
        "Bearer error=\"invalid_token\", error_description=\"malformed\", \
         scope=\"availability:read mail:scan unsubscribe:read unsubscribe:execute\", \
         resource_metadata=\"https://mcp.quietbox.test/.well-known/oauth-protected-resource\""
    );
}
