//! Issue 18 at the HTTP edge of `quietbox-mcp`: the 403 step-up challenge for a missing tool
//! scope and the scopes in the 401 challenge (item 3), the `Origin` allow-list (item 4), rate
//! limits on reads and sessions counted per tenant (item 9), and a call whose work panics is
//! still answered (item 12).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{KEY, RSA1_PEM, SECRET, Session, key, serve, spawn};

const ALL_SCOPES: &str =
    "availability:read mail:scan unsubscribe:read unsubscribe:execute unsubscribe:digest";

/// An HS256 token for `sub` (its tenant) with `scopes`.
fn token_for(sub: &str, scopes: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims =
        json!({"sub": sub, "aud": "quietbox", "scope": scopes, "iat": now, "exp": now + 600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn bearer(token: String) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "it", "version": "1"}}})
}

/// POSTs `body` to `/mcp` with the given headers; status, headers and body text.
async fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

fn challenge(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// A `tools/call` on an open session, answered at the HTTP level.
async fn call_raw(
    session: &Session,
    name: &str,
    arguments: Value,
) -> (u16, reqwest::header::HeaderMap, String) {
    let id = session.id.clone().unwrap();
    post(
        &session.url,
        &[
            (session.auth.0.as_str(), session.auth.1.as_str()),
            ("mcp-session-id", id.as_str()),
        ],
        &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": arguments}}),
    )
    .await
}

#[tokio::test]
async fn a_tool_call_without_its_scope_gets_403_with_the_insufficient_scope_challenge() {
    let server = spawn(&[]);
    let mut session =
        Session::open(&server, bearer(token_for("desk-1", "availability:read"))).await;
    let (status, headers, body) = call_raw(
        &session,
        "unsubscribe",
        json!({"sender": "lug@lists.example.org"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let challenge = challenge(&headers);
    assert!(
        challenge.starts_with("Bearer ")
            && challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"unsubscribe:execute\""),
        "{challenge}"
    );
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["code"], "insufficient_scope");
    assert_eq!(problem["scope"], "unsubscribe:execute");
    // The tool it has the scope for still answers, on the same session.
    let result = session
        .call(
            "get_availability",
            json!({"start": "2026-11-24T23:00:00Z", "end": "2026-11-25T23:00:00Z"}),
        )
        .await;
    assert_eq!(result["isError"], false, "{result}");
}

#[tokio::test]
async fn the_401_challenge_names_the_servers_scopes() {
    let server = spawn(&[]);
    let (status, headers, _) = post(&server.url("/mcp"), &[], &initialize()).await;
    assert_eq!(status, 401);
    let challenge = challenge(&headers);
    assert!(
        challenge.contains(&format!("scope=\"{ALL_SCOPES}\"")),
        "{challenge}"
    );
    // Without the mutation tools, their scopes are not asked for.
    let server = spawn(&[("MCP_ENABLE_MUTATION_TOOLS", "false")]);
    let (_, headers, _) = post(&server.url("/mcp"), &[], &initialize()).await;
    assert!(
        challenge_has(
            &headers,
            "scope=\"availability:read mail:scan unsubscribe:read\""
        ),
        "{}",
        self::challenge(&headers)
    );
}

fn challenge_has(headers: &reqwest::header::HeaderMap, part: &str) -> bool {
    challenge(headers).contains(part)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_oauth_mode_403_and_401_point_to_the_resource_metadata() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let metadata = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")});
    tokio::spawn(async move { serve(listener, metadata).await });
    let resource = "https://mcp.quietbox.test/mcp";
    let server = spawn(&[
        ("MCP_AUTH_MODE", "oauth"),
        ("MCP_OAUTH_ISSUER", &issuer),
        ("MCP_RESOURCE_URL", resource),
    ]);
    let metadata_param =
        "resource_metadata=\"https://mcp.quietbox.test/.well-known/oauth-protected-resource\"";
    let (status, headers, _) = post(&server.url("/mcp"), &[], &initialize()).await;
    assert_eq!(status, 401);
    assert!(
        challenge_has(&headers, metadata_param),
        "{}",
        challenge(&headers)
    );
    assert!(
        challenge_has(&headers, &format!("scope=\"{ALL_SCOPES}\"")),
        "{}",
        challenge(&headers)
    );

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"sub": "desk-3", "iss": issuer, "aud": resource, "scope": "availability:read", "iat": now, "exp": now + 600});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rsa1".into());
    header.typ = Some("at+jwt".into());
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(RSA1_PEM.as_bytes()).unwrap(),
    )
    .unwrap();
    let session = Session::open(&server, bearer(token)).await;
    let (status, headers, body) = call_raw(
        &session,
        "unsubscribe",
        json!({"sender": "lug@lists.example.org"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let challenge = challenge(&headers);
    assert!(
        challenge.contains(metadata_param)
            && challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"unsubscribe:execute\""),
        "{challenge}"
    );
}

#[tokio::test]
async fn origins_outside_the_allow_list_and_null_get_403_on_every_request() {
    let server = spawn(&[]);
    let url = server.url("/mcp");
    let auth = ("x-api-key", KEY);
    for origin in [
        "http://evil.example.com",
        "null",
        "http://localhost.evil.example.com",
    ] {
        let (status, _, body) = post(&url, &[auth, ("origin", origin)], &initialize()).await;
        assert_eq!(status, 403, "{origin}: {body}");
        let problem: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["code"], "origin_not_allowed", "{body}");
        // Refused before authentication, too.
        let (status, _, _) = post(&url, &[("origin", origin)], &initialize()).await;
        assert_eq!(status, 403, "{origin} without a credential");
    }
    for origin in [
        "http://localhost:6274",
        "http://127.0.0.1:3000",
        "https://[::1]",
    ] {
        let (status, _, body) = post(&url, &[auth, ("origin", origin)], &initialize()).await;
        assert_eq!(status, 200, "{origin}: {body}");
    }
    let (status, _, _) = post(&url, &[auth], &initialize()).await;
    assert_eq!(status, 200, "no Origin: a non-browser client");
    // Requests within a session are checked as well.
    let session = Session::open(&server, key()).await;
    let id = session.id.clone().unwrap();
    let (status, _, _) = post(
        &url,
        &[
            auth,
            ("mcp-session-id", &id),
            ("origin", "http://evil.example.com"),
        ],
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_configured_origin_replaces_the_loopback_default() {
    let server = spawn(&[(
        "MCP_ALLOWED_ORIGINS",
        "https://app.example.com, http://dev.example.com:*",
    )]);
    let url = server.url("/mcp");
    let auth = ("x-api-key", KEY);
    for (origin, expected) in [
        ("https://app.example.com", 200),
        ("http://dev.example.com:8080", 200),
        ("https://app.example.com:8443", 403),
        ("http://localhost:6274", 403),
        ("http://evil.example.com", 403),
    ] {
        let (status, _, body) = post(&url, &[auth, ("origin", origin)], &initialize()).await;
        assert_eq!(status, expected, "{origin}: {body}");
    }
}

#[tokio::test]
async fn check_config_rejects_an_allowed_origin_that_is_not_one() {
    let dir = tempfile::tempdir().unwrap();
    let env = quietbox_testkit::binary::with(
        quietbox_testkit::binary::base_env(dir.path()),
        &[
            ("AUTH_MODE", "hybrid"),
            ("AGENT_API_KEY", KEY),
            ("AUTH_JWT_SECRET", SECRET),
            ("MCP_ALLOWED_ORIGINS", "https://app.example.com/mcp"),
        ],
    );
    let output = quietbox_testkit::binary::command(super::BIN, &env)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("MCP_ALLOWED_ORIGINS"), "{text}");
}

#[tokio::test]
async fn a_token_without_any_scope_gets_no_session() {
    let server = spawn(&[]);
    let (status, headers, body) = post(
        &server.url("/mcp"),
        &[(
            "authorization",
            &format!("Bearer {}", token_for("stranger", "")),
        )],
        &initialize(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("no quietbox scope"), "{body}");
    assert!(
        challenge_has(&headers, "error=\"insufficient_scope\""),
        "{}",
        challenge(&headers)
    );
    assert!(
        !headers.contains_key("mcp-session-id"),
        "no session was opened"
    );
}

#[tokio::test]
async fn one_tenant_at_its_session_cap_does_not_lock_out_another() {
    let server = spawn(&[("MCP_MAX_SESSIONS", "2")]);
    let greedy = || bearer(token_for("greedy", "availability:read"));
    let _first = Session::open(&server, greedy()).await;
    let _second = Session::open(&server, greedy()).await;
    let (status, _) = Session::try_open(&server, greedy()).await;
    assert_eq!(status, 503, "the tenant is at its cap");
    // The owner (API key, tenant default) and another tenant still get sessions.
    let mut owner = Session::open(&server, key()).await;
    assert!(!owner.tools().await.is_empty());
    let _other = Session::open(&server, bearer(token_for("desk-9", "mail:scan"))).await;
}

#[tokio::test]
async fn all_tenants_together_stop_at_four_times_the_per_tenant_cap() {
    let server = spawn(&[("MCP_MAX_SESSIONS", "1")]);
    let mut open = Vec::new();
    for tenant in ["t1", "t2", "t3", "t4"] {
        open.push(Session::open(&server, bearer(token_for(tenant, "mail:scan"))).await);
    }
    let (status, body) = Session::try_open(&server, bearer(token_for("t5", "mail:scan"))).await;
    assert_eq!(status, 503, "{body}");
    // A DELETE releases the slot.
    let first = open.remove(0);
    let closed = reqwest::Client::new()
        .delete(server.url("/mcp"))
        .header(first.auth.0.as_str(), first.auth.1.as_str())
        .header("mcp-session-id", first.id.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert!(closed.status().is_success(), "{}", closed.status());
    let mut status = 0;
    for _ in 0..100 {
        status = Session::try_open(&server, bearer(token_for("t5", "mail:scan")))
            .await
            .0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "a closed session frees its slot");
}

#[tokio::test]
async fn read_tools_are_rate_limited_too() {
    let server = spawn(&[
        ("RATE_LIMIT_READ_PER_MIN", "1"),
        ("RATE_LIMIT_READ_BURST", "2"),
    ]);
    let mut session = Session::open(&server, key()).await;
    for _ in 0..2 {
        let result = session.call("list_unsubscribe_candidates", json!({})).await;
        assert_eq!(result["isError"], false, "{result}");
    }
    let result = session.call("list_unsubscribe_candidates", json!({})).await;
    assert_eq!(result["isError"], true, "{result}");
    assert!(
        result["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("rate limited"),
        "{result}"
    );
}

#[tokio::test]
async fn a_call_whose_arguments_once_panicked_is_answered() {
    let server = spawn(&[]);
    let mut session = Session::open(&server, key()).await;
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        session.request(
            "tools/call",
            json!({"name": "get_availability", "arguments": {"slot_minutes": 9223372036854775807i64}}),
        ),
    )
    .await
    .expect("the call is answered");
    assert!(
        answer.get("result").is_some() || answer.get("error").is_some(),
        "{answer}"
    );
    // The server is still there for the next call.
    let result = session.call("list_unsubscribe_candidates", json!({})).await;
    assert_eq!(result["isError"], false, "{result}");
}

#[tokio::test]
async fn a_session_answers_only_the_principal_that_opened_it() {
    let server = spawn(&[]);
    let owner = Session::open(&server, bearer(token_for("desk-1", "unsubscribe:read"))).await;
    let id = owner.id.clone().unwrap();
    let list = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"});
    let other = format!("Bearer {}", token_for("desk-2", "unsubscribe:read"));
    let (status, _, body) = post(
        &owner.url,
        &[("authorization", &other), ("mcp-session-id", &id)],
        &list,
    )
    .await;
    assert_eq!(status, 404, "another tenant: {body}");
    let (status, _, _) = post(
        &owner.url,
        &[("x-api-key", KEY), ("mcp-session-id", &id)],
        &list,
    )
    .await;
    assert_eq!(status, 404, "the API key is another principal too");
    let (status, _, body) = post(
        &owner.url,
        &[
            (owner.auth.0.as_str(), owner.auth.1.as_str()),
            ("mcp-session-id", &id),
        ],
        &list,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}
