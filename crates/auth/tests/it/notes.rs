//! The notes example (`examples/notes_service.rs`, compiled in here as it is) end to end, over a
//! real loopback listener, in each mode: a service whose scopes the crate has never heard of.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use quietbox_auth::JwksTiming;
use serde_json::Value;

use crate::support::{self, Idp, claims};

#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/notes_service.rs"]
mod notes_service;

const KEY: &str = "notes-api-key-0123456789";
const SECRET: &str = "notes-hs256-secret-0123456789abcdef";

/// Serves the example with the settings in `vars` (and `timing` for its JWKS cache).
async fn serve(vars: &[(&str, &str)], timing: Option<JwksTiming>) -> String {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut config = notes_service::config(|name| vars.get(name).cloned()).unwrap();
    if let Some(timing) = timing {
        config.jwks = timing;
    }
    let auth = Arc::new(notes_service::Authenticator::new(config).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, notes_service::app(auth))
            .await
            .unwrap()
    });
    base
}

struct Answer {
    status: u16,
    challenge: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

async fn call(method: &str, url: &str, credential: Option<(&str, &str)>) -> Answer {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut request = match method {
        "POST" => client.post(url).body("a note"),
        _ => client.get(url),
    };
    if let Some((name, value)) = credential {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    Answer {
        status: response.status().as_u16(),
        challenge: response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: response.text().await.unwrap(),
    }
}

fn bearer(token: &str) -> Option<(&'static str, String)> {
    Some(("authorization", format!("Bearer {token}")))
}

async fn get(base: &str, credential: Option<(&str, String)>) -> Answer {
    call(
        "GET",
        &format!("{base}/notes"),
        credential.as_ref().map(|(n, v)| (*n, v.as_str())),
    )
    .await
}

async fn post(base: &str, credential: Option<(&str, String)>) -> Answer {
    call(
        "POST",
        &format!("{base}/notes"),
        credential.as_ref().map(|(n, v)| (*n, v.as_str())),
    )
    .await
}

#[tokio::test]
async fn api_key_mode_grants_every_declared_scope_and_names_them_in_the_401() {
    let base = serve(&[("AUTH_MODE", "api_key"), ("AUTH_API_KEY", KEY)], None).await;
    let key = Some(("x-api-key", KEY.to_owned()));
    assert_eq!(post(&base, key.clone()).await.status, 201);
    let listed = get(&base, key).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json()["notes"], serde_json::json!(["a note"]));
    assert_eq!(listed.json()["reader"], "api_key");

    let refused = get(&base, None).await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.challenge.as_deref(),
        Some(r#"Bearer realm="quietbox", scope="notes:read notes:write""#)
    );
    let wrong = get(&base, Some(("x-api-key", "nope".to_owned()))).await;
    assert_eq!(
        (wrong.status, wrong.json()["reason"].clone()),
        (401, "bad_api_key".into())
    );
    assert_eq!(
        call("GET", &format!("{base}/health"), None).await.status,
        200
    );
}

#[tokio::test]
async fn jwt_mode_lets_a_token_do_what_its_notes_scopes_allow() {
    let idp = Idp::start(vec![support::rsa_jwk(support::RSA1, "k1")]).await;
    let jwks_url = idp.jwks_url();
    let base = serve(&[("AUTH_MODE", "jwt"), ("AUTH_JWKS_URL", &jwks_url)], None).await;
    let token = |scope: &str| support::rs256(support::RSA1, "k1", &claims("notes", "any", scope));

    let reader = bearer(&token("openid notes:read"));
    assert_eq!(get(&base, reader.clone()).await.status, 200);
    let refused = post(&base, reader).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["scope"], "notes:write");
    assert_eq!(
        refused.challenge.as_deref(),
        Some(r#"Bearer realm="quietbox", error="insufficient_scope", scope="notes:write""#)
    );

    let writer = bearer(&token("notes:read notes:write"));
    assert_eq!(post(&base, writer.clone()).await.status, 201);
    assert_eq!(get(&base, writer).await.json()["reader"], "user-1");

    // Scopes of other services (quietbox's among them) grant nothing here.
    let foreign = get(&base, bearer(&token("mail:scan unsubscribe:execute"))).await;
    assert_eq!(foreign.status, 403);
    assert_eq!(foreign.json()["scope"], "notes:read");
    // The `scp` array form counts the same.
    let mut scp = claims("notes", "any", "");
    scp["scp"] = serde_json::json!(["notes:write"]);
    let scp = support::rs256(support::RSA1, "k1", &scp);
    assert_eq!(post(&base, bearer(&scp)).await.status, 201);
    // A token for another audience is not for this service.
    let elsewhere = support::rs256(
        support::RSA1,
        "k1",
        &claims("quietbox", "any", "notes:read"),
    );
    let refused = get(&base, bearer(&elsewhere)).await;
    assert_eq!(
        (refused.status, refused.json()["reason"].clone()),
        (401, "wrong_audience".into())
    );
}

#[tokio::test]
async fn jwt_mode_follows_a_rotation_of_the_jwks() {
    let idp = Idp::start(vec![support::rsa_jwk(support::RSA1, "k1")]).await;
    let jwks_url = idp.jwks_url();
    let timing = JwksTiming {
        ttl: Duration::from_millis(300),
        refetch_cooldown: Duration::from_millis(100),
        stale_grace: Duration::from_secs(3600),
    };
    let base = serve(
        &[("AUTH_MODE", "jwt"), ("AUTH_JWKS_URL", &jwks_url)],
        Some(timing),
    )
    .await;
    let old = support::rs256(support::RSA1, "k1", &claims("notes", "any", "notes:read"));
    let new = support::rs256(support::RSA2, "k2", &claims("notes", "any", "notes:read"));
    assert_eq!(get(&base, bearer(&old)).await.status, 200);

    idp.set_keys(vec![support::rsa_jwk(support::RSA2, "k2")]);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        get(&base, bearer(&new)).await.status,
        200,
        "the new kid is fetched"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let retired = get(&base, bearer(&old)).await;
    assert_eq!(
        (retired.status, retired.json()["reason"].clone()),
        (401, "unknown_kid".into())
    );
    assert_eq!(
        idp.fetch_count(),
        3,
        "one fetch at first use, one for the new kid, one when the TTL lapsed"
    );
}

#[tokio::test]
async fn hybrid_mode_takes_the_key_or_an_hs256_token() {
    let vars = [
        ("AUTH_MODE", "hybrid"),
        ("AUTH_API_KEY", KEY),
        ("AUTH_JWT_SECRET", SECRET),
    ];
    let base = serve(&vars, None).await;
    assert_eq!(
        post(&base, Some(("x-api-key", KEY.to_owned())))
            .await
            .status,
        201
    );
    assert_eq!(
        post(&base, bearer(KEY)).await.status,
        201,
        "the key as a bearer value"
    );
    let reader = support::hs256(SECRET, &claims("notes", "any", "notes:read"));
    assert_eq!(get(&base, bearer(&reader)).await.status, 200);
    assert_eq!(post(&base, bearer(&reader)).await.status, 403);
    let forged = support::hs256(
        "another-secret-0123456789abcdef",
        &claims("notes", "any", "notes:write"),
    );
    let refused = post(&base, bearer(&forged)).await;
    assert_eq!(
        (refused.status, refused.json()["reason"].clone()),
        (401, "bad_signature".into())
    );
}

#[tokio::test]
async fn oauth_mode_advertises_the_notes_scopes_and_accepts_tokens_for_this_resource() {
    let idp = Idp::start(vec![support::rsa_jwk(support::RSA1, "k1")]).await;
    let resource = "https://notes.example.test/api";
    let vars = [
        ("AUTH_MODE", "oauth"),
        ("AUTH_OAUTH_ISSUER", idp.base.as_str()),
        ("AUTH_RESOURCE_URL", resource),
    ];
    let base = serve(&vars, None).await;

    let refused = get(&base, None).await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.challenge.as_deref(),
        Some(
            r#"Bearer scope="notes:read notes:write", resource_metadata="https://notes.example.test/.well-known/oauth-protected-resource""#
        )
    );
    let document = call(
        "GET",
        &format!("{base}/.well-known/oauth-protected-resource"),
        None,
    )
    .await;
    assert_eq!(document.status, 200);
    assert_eq!(
        document.json()["scopes_supported"],
        serde_json::json!(["notes:read", "notes:write"])
    );
    assert_eq!(document.json()["resource"], resource);

    let token = |scope: &str| {
        support::access_token(support::RSA1, "k1", &claims(resource, &idp.base, scope))
    };
    assert_eq!(post(&base, bearer(&token("notes:write"))).await.status, 201);
    let reader = post(&base, bearer(&token("notes:read"))).await;
    assert_eq!(reader.status, 403);
    assert_eq!(
        reader.challenge.as_deref(),
        Some(
            r#"Bearer error="insufficient_scope", scope="notes:write", resource_metadata="https://notes.example.test/.well-known/oauth-protected-resource""#
        )
    );
}
