//! quietbox-mcp in OAuth mode starts while its authorization server is unreachable: `/health`
//! 200, `/ready` 503 naming `oauth_issuer`, the RFC 9728 document and the 401 challenge served,
//! calls with a token 503. When the IdP comes up on the configured address, discovery succeeds
//! in the background: `/ready` turns 200 and a token works, without a restart.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{RSA1_PEM, Session, serve, spawn};

const RESOURCE: &str = "https://mcp.quietbox.test/mcp";

fn signed(issuer: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"sub": "desk-3", "iss": issuer, "aud": RESOURCE, "scope": "unsubscribe:read", "iat": now, "exp": now + 600});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rsa1".into());
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(RSA1_PEM.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn get(url: String) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_mode_starts_while_the_idp_is_down_and_accepts_tokens_once_it_is_up() {
    // A loopback port nobody listens on (yet).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let issuer = format!("http://127.0.0.1:{port}");
    // Before the fix the binary exited on the failed discovery and spawn saw no `listening on`.
    let server = spawn(&[
        ("MCP_AUTH_MODE", "oauth"),
        ("MCP_OAUTH_ISSUER", &issuer),
        ("MCP_RESOURCE_URL", RESOURCE),
    ]);
    let (status, _) = get(server.url("/health")).await;
    assert_eq!(status, 200);
    let (status, ready) = get(server.url("/ready")).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["missing"], json!(["oauth_issuer"]), "{ready}");
    let (status, document) = get(server.url("/.well-known/oauth-protected-resource")).await;
    assert_eq!(status, 200);
    assert_eq!(document["resource"], RESOURCE);
    assert_eq!(document["authorization_servers"][0], issuer.as_str());
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let anonymous = reqwest::Client::new()
        .post(server.url("/mcp"))
        .header("x-api-key", super::KEY)
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("scope=\"")
    );
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(
                "resource_metadata=\"https://mcp.quietbox.test/.well-known/oauth-protected-resource\""
            )
    );
    let with_token = reqwest::Client::new()
        .post(server.url("/mcp"))
        .bearer_auth(signed(&issuer))
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status(), 503);
    let problem: Value = with_token.json().await.unwrap();
    assert_eq!(problem["missing"], json!(["oauth_issuer"]), "{problem}");
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("dependency_failures_total{dependency=\"oauth_issuer\"}"),
        "{metrics}"
    );

    // The IdP comes up on the configured address.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let metadata = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")});
    tokio::spawn(async move { serve(listener, metadata).await });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get(server.url("/ready")).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut session = Session::open(
        &server,
        ("authorization", format!("Bearer {}", signed(&issuer))),
    )
    .await;
    assert_eq!(session.tools().await.len(), 8, "the token works now");
    assert!(server.logs().contains("oauth_issuer unreachable"));
}
