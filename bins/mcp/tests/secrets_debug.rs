//! Secrets never reach the output of `quietbox-mcp`, even at `RUST_LOG=debug` (issue 11): a
//! scripted streamable-HTTP session with an API key, HS256 JWTs, a Google refresh token and
//! client secret (the gmail provider against the fake Google), secrets in headers and query
//! strings, and failing requests; then stdout and stderr together must name none of them.

use quietbox_testkit::capture::{self, secrets};
use quietbox_testkit::{FakeGoogle, FakeMessage, Faults, binary};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_quietbox-mcp");

fn jwt(scopes: &str, secret: &str) -> String {
    let claims =
        json!({"sub": "desk-1", "aud": "quietbox", "scope": scopes, "exp": 4_000_000_000u64});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn signature(jwt: &str) -> &str {
    jwt.rsplit('.').next().unwrap()
}

/// One MCP session over streamable HTTP with one credential header.
struct Session {
    client: reqwest::Client,
    url: String,
    auth: (&'static str, String),
    id: Option<String>,
    next: u64,
}

impl Session {
    async fn post(&mut self, body: Value) -> (u16, String) {
        let mut request = self
            .client
            .post(&self.url)
            .header(self.auth.0, &self.auth.1)
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
        (status, response.text().await.unwrap())
    }

    async fn request(&mut self, method: &str, params: Value) -> (u16, String) {
        self.next += 1;
        let id = self.next;
        self.post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await
    }

    /// Initializes, then calls each tool; returns the HTTP status of each step.
    async fn script(&mut self, tools: &[&str]) -> Vec<(u16, String)> {
        let mut answers = vec![
            self.request("initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "it", "version": "1"}}))
                .await,
        ];
        self.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        for tool in tools {
            answers.push(
                self.request("tools/call", json!({"name": tool, "arguments": {}}))
                    .await,
            );
        }
        answers
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_of_a_whole_session_carry_no_secret() {
    let fake = FakeGoogle::start("owner@example.com").await;
    fake.add_messages(vec![FakeMessage::new(
        "g1",
        "\"Gadget News\" <news@gadgets.example.com>",
        1_795_000_000_000,
        &[
            ("List-Id", "<news.gadgets.example.com>"),
            ("List-Unsubscribe", "<https://gadgets.example.com/u/1>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ],
    )]);
    let dir = tempfile::tempdir().unwrap();
    let mut env = binary::base_env(dir.path());
    for (k, v) in secrets::gmail_env(&fake, dir.path()) {
        env.retain(|(key, _)| *key != k);
        env.push((k, v));
    }
    let server = capture::spawn(BIN, &env);
    let good = jwt("mail:scan unsubscribe:read", secrets::JWT_SECRET);
    let narrow = jwt("availability:read", secrets::JWT_SECRET);
    let forged = jwt("mail:scan", "not-the-secret-but-still-a-token-sig");
    let url = server.url(&format!("/mcp?{}", secrets::query()));
    let session = |auth: (&'static str, String)| Session {
        client: reqwest::Client::new(),
        url: url.clone(),
        auth,
        id: None,
        next: 0,
    };

    let with_key = session(("x-api-key", secrets::API_KEY.to_owned()))
        .script(&["scan_inbox", "list_unsubscribe_candidates"])
        .await;
    assert_eq!(with_key[0].0, 200, "{with_key:?}");
    assert!(
        with_key[1].0 == 200 && !with_key[1].1.contains("\"isError\":true"),
        "{with_key:?}"
    );
    let bearer = |t: &str| ("authorization", format!("Bearer {t}"));
    session(bearer(&good)).script(&["scan_inbox"]).await;
    // Scope refused for the tool: a failing call with a valid token.
    session(bearer(&narrow)).script(&["scan_inbox"]).await;
    let refused = session(bearer(&forged)).script(&[]).await;
    assert_eq!(refused[0].0, 401, "{refused:?}");
    let wrong = session(("x-api-key", secrets::WRONG_KEY.to_owned()))
        .script(&[])
        .await;
    assert_eq!(wrong[0].0, 401, "{wrong:?}");
    session(("cookie", format!("session={}", secrets::COOKIE)))
        .script(&[])
        .await;
    // Failing Google calls and a token refresh, logged at debug by the HTTP client stack.
    fake.expire_access_tokens();
    fake.set_faults(Faults {
        fail_next: 20,
        ..Faults::default()
    });
    session(("x-api-key", secrets::API_KEY.to_owned()))
        .script(&["scan_inbox"])
        .await;
    fake.set_faults(Faults::default());

    let output = server.finish();
    secrets::assert_absent(
        &output,
        &[
            &good,
            signature(&good),
            &narrow,
            signature(&narrow),
            &forged,
            signature(&forged),
        ],
    );
}
