//! The real `quietbox-mcp` binary over streamable HTTP: the MCP handshake, tools per
//! configuration, scope per tool, incident gating, and OAuth resource-server mode.

use std::time::{SystemTime, UNIX_EPOCH};

mod hardening;
mod message_text;
mod rmcp_client;
mod session_cap;
mod startup_without_idp;
mod tool_results;
mod transport;
mod typed_args;

use quietbox_testkit::binary::{self, Server, with};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_quietbox-mcp");
const KEY: &str = quietbox_testkit::API_KEY;
const SECRET: &str = quietbox_testkit::JWT_SECRET;
const RSA1_PEM: &str = include_str!("../../../../crates/auth/tests/keys/rsa1.pem");
const RSA1_JWKS: &str = include_str!("../../../../crates/auth/tests/keys/rsa1.jwks.json");

fn spawn(extra: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let env = with(
        binary::base_env(dir.path()),
        &[
            ("AUTH_MODE", "hybrid"),
            ("AGENT_API_KEY", KEY),
            ("AUTH_JWT_SECRET", SECRET),
        ],
    );
    let env = with(env, extra);
    binary::spawn(BIN, dir, &env)
}

fn token(scopes: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"sub": "desk-1", "aud": "quietbox", "scope": scopes, "exp": now + 600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// A minimal streamable-HTTP MCP client: initialize, then JSON-RPC calls on the session.
struct Session {
    client: reqwest::Client,
    url: String,
    auth: (String, String),
    id: Option<String>,
    next: u64,
}

fn payload(text: &str) -> Value {
    // The answer is JSON or an SSE stream whose data lines carry JSON-RPC messages.
    serde_json::from_str(text).unwrap_or_else(|_| {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .filter_map(|d| serde_json::from_str(d).ok())
            .next_back()
            .unwrap_or(Value::Null)
    })
}

impl Session {
    async fn open(server: &Server, auth: (&str, String)) -> Session {
        let mut session = Session {
            client: reqwest::Client::new(),
            url: server.url("/mcp"),
            auth: (auth.0.to_owned(), auth.1),
            id: None,
            next: 1,
        };
        let init = session.request("initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "it", "version": "1"}})).await;
        assert_eq!(init["result"]["serverInfo"]["name"], "quietbox", "{init}");
        session
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        session
    }

    /// Sends `initialize` alone and reports the HTTP status (for tests of refusals).
    async fn try_open(server: &Server, auth: (&str, String)) -> (u16, Value) {
        let mut session = Session {
            client: reqwest::Client::new(),
            url: server.url("/mcp"),
            auth: (auth.0.to_owned(), auth.1),
            id: None,
            next: 1,
        };
        session
            .post(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "it", "version": "1"}}}))
            .await
    }

    async fn post(&mut self, body: Value) -> (u16, Value) {
        let mut request = self
            .client
            .post(&self.url)
            .header(&self.auth.0, &self.auth.1)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(id) = &self.id {
            request = request.header("mcp-session-id", id);
        }
        let response = request.send().await.unwrap();
        if let Some(id) = response.headers().get("mcp-session-id") {
            self.id = Some(id.to_str().unwrap().to_owned());
        }
        let status = response.status().as_u16();
        (status, payload(&response.text().await.unwrap()))
    }

    async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        self.post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await
            .1
    }

    async fn tools(&mut self) -> Vec<String> {
        let list = self.request("tools/list", json!({})).await;
        list["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn call(&mut self, name: &str, arguments: Value) -> Value {
        self.request("tools/call", json!({"name": name, "arguments": arguments}))
            .await["result"]
            .clone()
    }
}

fn key() -> (&'static str, String) {
    ("x-api-key", KEY.to_owned())
}

#[tokio::test]
async fn every_tool_is_listed_and_read_tools_answer_with_structured_content() {
    let server = spawn(&[]);
    let mut session = Session::open(&server, key()).await;
    let mut tools = session.tools().await;
    tools.sort();
    assert_eq!(
        tools,
        [
            "get_availability",
            "list_unsubscribe_candidates",
            "scan_inbox",
            "send_unsubscribe_digest",
            "set_sender_decision",
            "unsubscribe",
            "unsubscribe_compliance",
            "unsubscribe_history"
        ]
    );
    let result = session.call("list_unsubscribe_candidates", json!({})).await;
    assert_eq!(result["isError"], false);
    assert_eq!(
        result["structuredContent"]["candidates"][0]["sender"]["address"],
        "deals@shop.example.com"
    );
    // The text is the serialized result (tool_results.rs checks every tool).
    assert_eq!(
        serde_json::from_str::<Value>(result["content"][0]["text"].as_str().unwrap()).unwrap(),
        result["structuredContent"]
    );
    let result = session.call("get_availability", json!({"tz": "Europe/Paris", "start": "2026-11-24T23:00:00Z", "end": "2026-11-25T23:00:00Z"})).await;
    assert_eq!(
        result["structuredContent"]["busy"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{result}"
    );
    // Unsubscribe, then the compliance watch sees it; a decision records its actor.
    let result = session
        .call("unsubscribe", json!({"sender": "lug@lists.example.org"}))
        .await;
    assert_eq!(
        result["structuredContent"]["result"], "unsubscribed",
        "{result}"
    );
    let result = session
        .call(
            "unsubscribe_compliance",
            json!({"sender": "LUG@lists.example.org"}),
        )
        .await;
    assert_eq!(result["isError"], false, "{result}");
    let report = &result["structuredContent"];
    assert_eq!(report["entries"][0]["sender"], "lug@lists.example.org");
    assert_eq!(report["entries"][0]["status"], "pending");
    assert_eq!(report["entries"][0]["decision"], "unsubscribed");
    assert_eq!(report["summary"]["pending"], 1);
    let result = session
        .call(
            "set_sender_decision",
            json!({"sender": "deals@shop.example.com", "decision": "auto_archive"}),
        )
        .await;
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(result["structuredContent"]["decision"], "auto_archive");
    assert_eq!(result["structuredContent"]["actor"], "api_key");
    assert_eq!(result["structuredContent"]["archive"]["applied"], false);
    // The text is the serialized result (tool_results.rs checks every tool).
    assert_eq!(
        serde_json::from_str::<Value>(result["content"][0]["text"].as_str().unwrap()).unwrap(),
        result["structuredContent"]
    );
}

#[tokio::test]
async fn mutation_tools_are_hidden_and_refused_when_disabled() {
    let server = spawn(&[("MCP_ENABLE_MUTATION_TOOLS", "false")]);
    let mut session = Session::open(&server, key()).await;
    let tools = session.tools().await;
    assert_eq!(tools.len(), 5);
    assert!(tools.iter().any(|t| t == "unsubscribe_compliance"));
    assert!(!tools.iter().any(|t| t == "unsubscribe"
        || t == "send_unsubscribe_digest"
        || t == "set_sender_decision"));
    let refused = session
        .request(
            "tools/call",
            json!({"name": "unsubscribe", "arguments": {"sender": "deals@shop.example.com"}}),
        )
        .await;
    assert!(refused.get("error").is_some(), "{refused}");
    let refused = session
        .request(
            "tools/call",
            json!({"name": "set_sender_decision", "arguments": {"sender": "deals@shop.example.com", "decision": "keep"}}),
        )
        .await;
    assert!(refused.get("error").is_some(), "{refused}");
}

#[tokio::test]
async fn a_token_without_the_tools_scope_is_refused_naming_it() {
    let server = spawn(&[]);
    let mut session = Session::open(
        &server,
        ("authorization", format!("Bearer {}", token("mail:scan"))),
    )
    .await;
    for tool in ["list_unsubscribe_candidates", "unsubscribe_compliance"] {
        let (status, problem) = session
            .post(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": tool, "arguments": {}}}))
            .await;
        assert_eq!(status, 403, "{tool}: {problem}");
        assert_eq!(problem["scope"], "unsubscribe:read", "{problem}");
    }
    let result = session.call("scan_inbox", json!({"limit": 1})).await;
    assert_eq!(result["isError"], false);
    let response = reqwest::Client::new()
        .post(server.url("/mcp"))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn an_incident_from_the_cli_refuses_mutation_tools_without_restart() {
    let server = spawn(&[]);
    let env = with(
        with(
            binary::base_env(server.dir.path()),
            &[
                ("AUTH_MODE", "hybrid"),
                ("AGENT_API_KEY", KEY),
                ("AUTH_JWT_SECRET", SECRET),
            ],
        ),
        &[],
    );
    let output = binary::command(BIN, &env)
        .args(["incident", "start", "--ttl", "1h"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut session = Session::open(&server, key()).await;
    let result = session
        .call("unsubscribe", json!({"sender": "lug@lists.example.org"}))
        .await;
    assert_eq!(result["isError"], true);
    assert!(
        result["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("incident"),
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_mode_answers_401_with_resource_metadata_and_checks_the_audience() {
    // A loopback authorization server: RFC 8414 metadata and an (empty) JWKS.
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
    let response = reqwest::Client::new()
        .post(server.url("/mcp"))
        .header("x-api-key", KEY)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        401,
        "the API key is no credential in oauth mode"
    );
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(
            "resource_metadata=\"https://mcp.quietbox.test/.well-known/oauth-protected-resource\""
        ),
        "{challenge}"
    );
    let document: Value = reqwest::get(server.url("/.well-known/oauth-protected-resource"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["resource"], resource);
    assert_eq!(document["authorization_servers"][0], issuer.as_str());
    // Tokens from the issuer's key: only the one minted for this resource is accepted.
    let signed = |aud: &str| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({"sub": "desk-2", "iss": issuer, "aud": aud, "scope": "unsubscribe:read", "exp": now + 600});
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some("rsa1".into());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_rsa_pem(RSA1_PEM.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let response = reqwest::Client::new()
        .post(server.url("/mcp"))
        .bearer_auth(signed("https://elsewhere.test/mcp"))
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("wrong_audience")
    );
    let response = reqwest::Client::new()
        .post(server.url("/mcp"))
        .bearer_auth(token("mail:scan"))
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        401,
        "HS256 tokens have no key in oauth mode"
    );
    let mut session = Session::open(
        &server,
        ("authorization", format!("Bearer {}", signed(resource))),
    )
    .await;
    assert_eq!(
        session.tools().await.len(),
        8,
        "a token for this resource is accepted"
    );
}

/// A tiny HTTP/1.1 responder for the authorization server's two JSON documents.
async fn serve(listener: tokio::net::TcpListener, metadata: Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let metadata = metadata.clone();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            let n = stream.read(&mut buffer).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buffer[..n]);
            let body = if request.starts_with("GET /.well-known/oauth-authorization-server") {
                metadata.to_string()
            } else if request.starts_with("GET /jwks") {
                RSA1_JWKS.to_owned()
            } else {
                String::new()
            };
            let status = if body.is_empty() {
                "404 Not Found"
            } else {
                "200 OK"
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

#[tokio::test]
async fn a_scan_with_a_progress_token_sends_progress_before_the_result() {
    let server = spawn(&[]);
    let session = Session::open(&server, key()).await;
    let client = reqwest::Client::new();
    let response = client
        .post(server.url("/mcp"))
        .header("x-api-key", KEY)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session.id.clone().unwrap())
        .json(&json!({"jsonrpc": "2.0", "id": 99, "method": "tools/call",
            "params": {"name": "scan_inbox", "arguments": {"limit": 1}, "_meta": {"progressToken": "p-1"}}}))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    let messages: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    let progress = messages
        .iter()
        .position(|m| m["method"] == "notifications/progress")
        .expect("a progress notification");
    let result = messages
        .iter()
        .position(|m| m["id"] == 99)
        .expect("the result");
    assert!(progress < result, "{messages:?}");
    assert_eq!(messages[progress]["params"]["progressToken"], "p-1");
    assert_eq!(messages[progress]["params"]["total"], 300.0);
}
