//! Crash consistency of `quietbox-mcp` (issue 11): the server is SIGKILLed at random moments
//! while `unsubscribe` and `send_unsubscribe_digest` tool calls run over streamable HTTP, many
//! times over one `DATA_DIR`. The cycle and the checks are testkit's
//! (`quietbox_testkit::crash`, shared with quietbox-api and quietbox-a2a): every state file
//! parses, no one-click endpoint is posted to twice, a final run records every requested
//! unsubscribe once, and no link goes out in two digests.
//!
//! `QUIETBOX_CRASH_CYCLES` (default 12 here) sets the number of kill cycles, `QUIETBOX_CRASH_SEED`
//! replays a run. The figures are printed with `eprintln!` (`--no-capture` shows them).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use quietbox_testkit::crash::{self, API_KEY, Call, Client, Target};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_quietbox-mcp");

/// An MCP session over streamable HTTP: `initialize` once, then concurrent `tools/call`s on the
/// session; the answer is the tool's structured content, `isError` or a JSON-RPC error is an error.
struct Mcp {
    http: reqwest::Client,
    url: String,
    session: String,
    next: Arc<AtomicU64>,
}

/// The JSON-RPC message of an answer that is JSON or an SSE stream of JSON-RPC messages.
fn payload(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .rfind(|m| m.get("result").is_some() || m.get("error").is_some())
            .unwrap_or(Value::Null)
    })
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: &Value,
) -> Result<(Option<String>, Value), String> {
    let mut request = http
        .post(url)
        .header("x-api-key", API_KEY)
        .header("accept", "application/json, text/event-stream")
        .json(body);
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {text}"));
    }
    Ok((session, payload(&text)))
}

impl Mcp {
    async fn open(base: String) -> Mcp {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let url = format!("{base}/mcp");
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "crash", "version": "1"}}});
        let (session, answer) = post(&http, &url, None, &init).await.unwrap();
        assert_eq!(
            answer["result"]["serverInfo"]["name"], "quietbox",
            "{answer}"
        );
        let session = session.expect("an mcp-session-id");
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        post(&http, &url, Some(&session), &initialized)
            .await
            .unwrap();
        Mcp {
            http,
            url,
            session,
            next: Arc::new(AtomicU64::new(1)),
        }
    }

    fn tool(&self, name: &str, arguments: Value) -> Call {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments}});
        let (http, url, session) = (self.http.clone(), self.url.clone(), self.session.clone());
        Box::pin(async move {
            let (_, answer) = post(&http, &url, Some(&session), &body).await?;
            let result = &answer["result"];
            if answer.get("error").is_some() || result["isError"] != false {
                return Err(format!("tool call failed: {answer}"));
            }
            Ok(result["structuredContent"].clone())
        })
    }
}

impl Client for Mcp {
    fn scan(&self) -> Call {
        self.tool("scan_inbox", json!({"limit": 1000}))
    }

    fn unsubscribe(&self, sender: &str) -> Call {
        self.tool("unsubscribe", json!({"sender": sender}))
    }

    fn digest(&self) -> Call {
        self.tool("send_unsubscribe_digest", json!({"send": true}))
    }

    fn history(&self) -> Call {
        self.tool("unsubscribe_history", json!({}))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_killed_during_unsubscribe_and_digest_tool_calls_loses_nothing_and_repeats_nothing() {
    let target = Target {
        name: "quietbox-mcp",
        binary: BIN,
        env: Vec::new(),
        connect: Box::new(|base| {
            Box::pin(async move { Arc::new(Mcp::open(base).await) as Arc<dyn Client> })
        }),
    };
    let figures = crash::run(&target, crash::cycles(12), crash::seed()).await;
    eprintln!("{figures}");
}
