//! REST, A2A and MCP served in-process over loopback HTTP, each on its own state, with the full
//! shared stack (`with_common_layers`) and hybrid auth, so one test can ask the same question of
//! the three protocols. One request helper per protocol; each answers `(HTTP status, JSON)`.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use quietbox_runtime::config::{Binary, RawSettings, Settings};
use quietbox_runtime::http::{HttpLimits, with_common_layers};
use quietbox_runtime::operations::{Args, Operation};
use quietbox_runtime::wiring::App;
use quietbox_testkit::binary::{base_env, with};
use serde_json::{Value, json};

use crate::harness::{KEY, SECRET};

/// One protocol served on loopback.
pub struct Surface {
    pub base: String,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn serve(
    binary: Binary,
    name: &'static str,
    surface: fn(App) -> Router,
    extra: &[(&str, &str)],
) -> Surface {
    let dir = tempfile::tempdir().unwrap();
    let env = with(
        base_env(dir.path()),
        &[
            ("AUTH_MODE", "hybrid"),
            ("AGENT_API_KEY", KEY),
            ("AUTH_JWT_SECRET", SECRET),
        ],
    );
    let env: HashMap<String, String> = with(env, extra).into_iter().collect();
    let raw = RawSettings::load_from(&env).unwrap();
    let settings = Settings::from_raw(binary, &raw).unwrap();
    let limits = HttpLimits::from_settings(&settings);
    let app = quietbox_runtime::wiring::build(settings).await.unwrap();
    let router = with_common_layers(surface(app), name, limits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Surface {
        base,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

pub async fn rest(extra: &[(&str, &str)]) -> Surface {
    serve(
        Binary::Api,
        "quietbox-api",
        quietbox_api::rest::router,
        extra,
    )
    .await
}

pub async fn a2a(extra: &[(&str, &str)]) -> Surface {
    serve(
        Binary::A2a,
        "quietbox-a2a",
        quietbox_a2a::a2a::router,
        extra,
    )
    .await
}

pub async fn mcp(extra: &[(&str, &str)]) -> Surface {
    serve(
        Binary::Mcp,
        "quietbox-mcp",
        quietbox_mcp::mcp::router,
        extra,
    )
    .await
}

/// A bearer token carrying exactly `scope`, for its own tenant (so MCP sessions of one scope do
/// not count against another's cap).
pub fn token(scope: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"sub": "matrix", "tenant": format!("t-{scope}"), "aud": "quietbox", "scope": scope, "exp": now + 600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// `Authorization` for a token, or `X-API-Key` for the operator key.
#[derive(Clone)]
pub enum Auth {
    Key,
    Bearer(String),
}

impl Auth {
    fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::Key => request.header("x-api-key", KEY),
            Auth::Bearer(token) => request.bearer_auth(token),
        }
    }
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, payload(&text))
}

/// JSON, or the last JSON-RPC message of an SSE stream.
fn payload(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .filter_map(|d| serde_json::from_str(d).ok())
            .next_back()
            .unwrap_or(Value::Null)
    })
}

/// The query string of flat JSON arguments.
fn query(args: &Value) -> String {
    let pairs: Vec<String> = args
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

impl Surface {
    /// `operation` over REST with JSON `args` (as A2A and MCP take them): its route, the
    /// arguments in the query (GET), the body (POST), or the path and body (the sender routes).
    pub async fn rest_call(&self, auth: &Auth, operation: Operation, args: &Value) -> (u16, Value) {
        let url = |path: &str| format!("{}{path}", self.base);
        let mut body = args.clone();
        let request = match operation {
            Operation::Availability => self
                .client
                .get(url(&format!("/v1/availability{}", query(args)))),
            Operation::UnsubscribeCandidates => self.client.get(url("/v1/unsubscribe/candidates")),
            Operation::UnsubscribeHistory => self
                .client
                .get(url(&format!("/v1/unsubscribe/history{}", query(args)))),
            Operation::UnsubscribeCompliance => self
                .client
                .get(url(&format!("/v1/unsubscribe/compliance{}", query(args)))),
            Operation::ScanInbox => self.client.post(url("/v1/mail/scan")).json(args),
            Operation::Unsubscribe => self.client.post(url("/v1/unsubscribe")).json(args),
            Operation::UnsubscribeDigest => {
                self.client.post(url("/v1/unsubscribe/digest")).json(args)
            }
            Operation::SenderView => {
                let address = args["address"].as_str().unwrap_or_default();
                self.client.get(url(&format!("/v1/senders/{address}")))
            }
            Operation::SenderDecision => {
                let sender = body
                    .as_object_mut()
                    .and_then(|o| o.remove("sender"))
                    .and_then(|s| s.as_str().map(str::to_owned))
                    .unwrap_or_default();
                self.client
                    .put(url(&format!("/v1/senders/{sender}/decision")))
                    .json(&body)
            }
        };
        answer(auth.apply(request).send().await.unwrap()).await
    }

    /// A2A `SendMessage` running `operation`'s skill with `args` in a data part.
    pub async fn a2a_call(&self, auth: &Auth, operation: Operation, args: &Value) -> (u16, Value) {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
            "params": {"message": {"messageId": "m1", "role": "ROLE_USER",
                "parts": [{"data": {"skill": operation.id(), "args": args}}]}}});
        self.a2a_rpc(auth, body).await
    }

    /// One A2A JSON-RPC request.
    pub async fn a2a_rpc(&self, auth: &Auth, body: Value) -> (u16, Value) {
        let request = self.client.post(format!("{}/", self.base)).json(&body);
        answer(auth.apply(request).send().await.unwrap()).await
    }

    /// Opens an MCP session: its id.
    pub async fn mcp_open(&self, auth: &Auth) -> String {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "matrix", "version": "1"}}});
        let response = auth
            .apply(self.client.post(format!("{}/mcp", self.base)))
            .header("accept", "application/json, text/event-stream")
            .json(&init)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let session = response.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let (status, _) = self
            .mcp_post(
                auth,
                &session,
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            )
            .await;
        assert!(status < 300, "{status}");
        session
    }

    /// One JSON-RPC message on an MCP session.
    pub async fn mcp_post(&self, auth: &Auth, session: &str, body: Value) -> (u16, Value) {
        let request = auth
            .apply(self.client.post(format!("{}/mcp", self.base)))
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", session)
            .json(&body);
        answer(request.send().await.unwrap()).await
    }

    /// `tools/call` of `operation`'s tool with `args` (`None` when no tool runs it).
    pub async fn mcp_call(
        &self,
        auth: &Auth,
        session: &str,
        operation: Operation,
        args: &Value,
    ) -> Option<(u16, Value)> {
        let name = quietbox_mcp::mcp::tool_name(operation)?;
        let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": args}});
        Some(self.mcp_post(auth, session, body).await)
    }
}

/// `operation`'s minimal valid arguments, from its typed struct.
pub fn example(operation: Operation) -> Value {
    Args::example(operation)
}
