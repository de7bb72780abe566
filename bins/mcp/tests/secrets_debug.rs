//! Secrets never reach the output of `quietbox-mcp`, even at `RUST_LOG=debug` (issue 11): a
//! scripted streamable-HTTP session with an API key, HS256 JWTs, a Google refresh token and
//! client secret (the gmail provider against the fake Google), secrets in headers and query
//! strings, and failing requests; then stdout and stderr together must name none of them.

use quietbox_testkit::capture::secrets::{self, Session as Subject, Tokens};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_quietbox-mcp");

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
    let subject = Subject::start(BIN).await;
    let server = &subject.server;
    let tokens = Tokens::mint("desk-1");
    let (good, narrow, forged) = (&tokens.good, &tokens.narrow, &tokens.forged);
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
    session(bearer(good)).script(&["scan_inbox"]).await;
    // Scope refused for the tool: a failing call with a valid token.
    session(bearer(narrow)).script(&["scan_inbox"]).await;
    let refused = session(bearer(forged)).script(&[]).await;
    assert_eq!(refused[0].0, 401, "{refused:?}");
    let wrong = session(("x-api-key", secrets::WRONG_KEY.to_owned()))
        .script(&[])
        .await;
    assert_eq!(wrong[0].0, 401, "{wrong:?}");
    session(("cookie", format!("session={}", secrets::COOKIE)))
        .script(&[])
        .await;
    // Failing Google calls and a token refresh, logged at debug by the HTTP client stack.
    subject.break_google();
    session(("x-api-key", secrets::API_KEY.to_owned()))
        .script(&["scan_inbox"])
        .await;
    subject.heal_google();

    subject.finish(&tokens);
}
