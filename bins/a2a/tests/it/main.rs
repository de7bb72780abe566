//! The real `quietbox-a2a` binary over HTTP: the card, every JSON-RPC method, auth and scopes,
//! streaming, task persistence across processes, and malformed JSON-RPC.

use std::time::{SystemTime, UNIX_EPOCH};

use quietbox_testkit::binary::{self, Server, with};
use serde_json::{Value, json};

mod hardening;
mod spec;

const BIN: &str = env!("CARGO_BIN_EXE_quietbox-a2a");
const KEY: &str = quietbox_testkit::API_KEY;
const SECRET: &str = quietbox_testkit::JWT_SECRET;

fn env(dir: &std::path::Path, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let base = with(
        binary::base_env(dir),
        &[
            ("AUTH_MODE", "hybrid"),
            ("AGENT_API_KEY", KEY),
            ("AUTH_JWT_SECRET", SECRET),
        ],
    );
    with(base, extra)
}

fn spawn(extra: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path(), extra);
    binary::spawn(BIN, dir, &env)
}

fn token(scopes: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"sub": "agent-9", "aud": "quietbox", "scope": scopes, "exp": now + 600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

async fn call(server: &Server, auth: (&str, String), body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(server.url("/"))
        .header(auth.0, auth.1)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn key() -> (&'static str, String) {
    ("x-api-key", KEY.to_owned())
}

fn send(id: u64, parts: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "SendMessage",
        "params": {"message": {"messageId": format!("m{id}"), "role": "ROLE_USER", "parts": parts}}})
}

#[tokio::test]
async fn the_agent_card_describes_skills_streaming_and_security() {
    let server = spawn(&[]);
    let card: Value = reqwest::get(server.url("/.well-known/agent-card.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(card["supportedInterfaces"][0]["protocolBinding"], "JSONRPC");
    assert_eq!(card["supportedInterfaces"][0]["protocolVersion"], "1.0");
    assert_eq!(
        card["supportedInterfaces"][0]["url"],
        format!("{}/", server.base)
    );
    assert_eq!(card["capabilities"]["streaming"], true);
    let skills: Vec<&str> = card["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        skills,
        [
            "availability",
            "scan_inbox",
            "unsubscribe_candidates",
            "unsubscribe_history",
            "unsubscribe",
            "unsubscribe_digest",
            "sender_decision",
            "unsubscribe_compliance"
        ]
    );
    assert!(card["securitySchemes"]["api_key"]["apiKeySecurityScheme"]["name"] == "X-API-Key");
    assert!(card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"] == "Bearer");
    let key_only = spawn(&[("AUTH_MODE", "api_key")]);
    let card: Value = reqwest::get(key_only.url("/.well-known/agent-card.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        card["securitySchemes"].get("bearer").is_none(),
        "the card matches the auth mode"
    );
}

#[tokio::test]
async fn send_message_runs_a_skill_by_text_or_data_part_and_tasks_persist() {
    let server = spawn(&[]);
    let (status, answer) = call(
        &server,
        key(),
        send(1, json!([{"text": "list candidates"}])),
    )
    .await;
    assert_eq!(status, 200);
    let task = &answer["result"]["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED");
    assert_eq!(
        task["artifacts"][0]["parts"][0]["data"]["candidates"][0]["sender"]["address"],
        "deals@shop.example.com"
    );
    assert!(
        task["artifacts"][0]["parts"][1]["text"]
            .as_str()
            .unwrap()
            .ends_with("candidates")
    );
    assert_eq!(task["history"][0]["role"], "ROLE_USER");
    let id = task["id"].as_str().unwrap().to_owned();

    let (_, answer) = call(&server, key(), send(2, json!([{"data": {"skill": "availability", "args": {"tz": "Europe/Paris", "start": "2026-11-24T23:00:00Z", "end": "2026-11-25T23:00:00Z", "slot_minutes": 60}}}]))).await;
    assert_eq!(
        answer["result"]["task"]["artifacts"][0]["parts"][0]["data"]["busy"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A second process sharing the data directory sees the task.
    let dir = tempfile::tempdir().unwrap();
    let data = server.dir.path().join("data");
    let other = binary::spawn(
        BIN,
        dir,
        &with(
            env(server.dir.path(), &[]),
            &[("DATA_DIR", data.to_str().unwrap())],
        ),
    );
    let (_, got) = call(
        &other,
        key(),
        json!({"jsonrpc": "2.0", "id": 3, "method": "GetTask", "params": {"id": id}}),
    )
    .await;
    assert_eq!(got["result"]["id"], id.as_str());
    let (_, listed) = call(
        &other,
        key(),
        json!({"jsonrpc": "2.0", "id": 4, "method": "ListTasks", "params": {"pageSize": 1}}),
    )
    .await;
    assert_eq!(listed["result"]["totalSize"], 2);
    assert_eq!(listed["result"]["tasks"].as_array().unwrap().len(), 1);
    assert!(
        !listed["result"]["nextPageToken"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    let (_, cancel) = call(
        &other,
        key(),
        json!({"jsonrpc": "2.0", "id": 5, "method": "CancelTask", "params": {"id": id}}),
    )
    .await;
    assert_eq!(
        cancel["error"]["code"], -32002,
        "a completed task is not cancelable"
    );
    let (_, missing) = call(
        &other,
        key(),
        json!({"jsonrpc": "2.0", "id": 6, "method": "GetTask", "params": {"id": "nope"}}),
    )
    .await;
    assert_eq!(missing["error"]["code"], -32001);
}

#[tokio::test]
async fn a_failed_operation_is_a_failed_task_and_an_unknown_skill_is_invalid_params() {
    let server = spawn(&[]);
    let (_, answer) = call(&server, key(), send(1, json!([{"data": {"skill": "unsubscribe", "args": {"sender": "nobody@nowhere.example"}}}]))).await;
    let task = &answer["result"]["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_FAILED");
    assert!(
        task["status"]["message"]["parts"][0]["text"]
            .as_str()
            .unwrap()
            .contains("nobody@nowhere.example")
    );
    let (_, answer) = call(
        &server,
        key(),
        send(2, json!([{"data": {"skill": "teleport"}}])),
    )
    .await;
    assert_eq!(answer["error"]["code"], -32602);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("scan_inbox"),
        "the error lists the skills"
    );
    let (_, answer) = call(&server, key(), send(3, json!([{"text": "sing a song"}]))).await;
    assert_eq!(answer["error"]["code"], -32602);
}

#[tokio::test]
async fn every_skill_needs_its_scope() {
    let server = spawn(&[]);
    let bearer = |scopes: &str| ("authorization", format!("Bearer {}", token(scopes)));
    let (status, answer) = call(
        &server,
        bearer("mail:scan"),
        send(1, json!([{"text": "candidates"}])),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(answer["scope"], "unsubscribe:read");
    let (status, _) = call(
        &server,
        bearer("unsubscribe:read"),
        send(2, json!([{"text": "candidates"}])),
    )
    .await;
    assert_eq!(status, 200);
    let (status, answer) = call(&server, bearer("unsubscribe:read"), send(3, json!([{"data": {"skill": "unsubscribe", "args": {"sender": "deals@shop.example.com", "dry_run": true}}}]))).await;
    assert_eq!(
        (status, answer["scope"].as_str()),
        (403, Some("unsubscribe:execute"))
    );
    let response = reqwest::Client::new()
        .post(server.url("/"))
        .json(&send(4, json!([{"text": "candidates"}])))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    // The decision and compliance skills: the same scopes as their REST routes.
    let decide = json!([{"data": {"skill": "sender_decision", "args": {"sender": "deals@shop.example.com", "decision": "keep"}}}]);
    let (status, answer) = call(&server, bearer("unsubscribe:read"), send(5, decide.clone())).await;
    assert_eq!(
        (status, answer["scope"].as_str()),
        (403, Some("unsubscribe:execute"))
    );
    let (status, answer) = call(&server, bearer("unsubscribe:execute"), send(6, decide)).await;
    assert_eq!(status, 200);
    let data = &answer["result"]["task"]["artifacts"][0]["parts"][0]["data"];
    assert_eq!(
        (&data["decision"], &data["actor"]),
        (&json!("keep"), &json!("agent-9"))
    );
    let (status, answer) = call(
        &server,
        bearer("unsubscribe:execute"),
        send(7, json!([{"text": "compliance"}])),
    )
    .await;
    assert_eq!(
        (status, answer["scope"].as_str()),
        (403, Some("unsubscribe:read"))
    );
    let (status, answer) = call(
        &server,
        bearer("unsubscribe:read"),
        send(
            8,
            json!([{"text": "who is still sending after unsubscribe?"}]),
        ),
    )
    .await;
    assert_eq!(status, 200);
    let task = &answer["result"]["task"];
    assert_eq!(task["artifacts"][0]["name"], "unsubscribe_compliance");
    assert_eq!(
        task["artifacts"][0]["parts"][0]["data"]["summary"],
        json!({"pending": 0, "compliant": 0, "violating": 0})
    );
    assert!(
        task["artifacts"][0]["parts"][1]["text"]
            .as_str()
            .unwrap()
            .contains("0 violating")
    );
}

#[tokio::test]
async fn malformed_json_rpc_gets_the_specified_errors() {
    let server = spawn(&[]);
    let client = reqwest::Client::new();
    let raw = |body: &'static str| {
        client
            .post(server.url("/"))
            .header("x-api-key", KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let parse: Value = raw("{not json").await.unwrap().json().await.unwrap();
    assert_eq!(parse["error"]["code"], -32700);
    assert_eq!(parse["id"], Value::Null);
    let (_, invalid) = call(
        &server,
        key(),
        json!({"jsonrpc": "1.0", "id": 1, "method": "GetTask"}),
    )
    .await;
    assert_eq!(invalid["error"]["code"], -32600);
    let (_, unknown) = call(
        &server,
        key(),
        json!({"jsonrpc": "2.0", "id": 2, "method": "message/send"}),
    )
    .await;
    assert_eq!(unknown["error"]["code"], -32601);
    let (_, batch) = call(
        &server,
        key(),
        json!([
            {"jsonrpc": "2.0", "id": 10, "method": "GetTask", "params": {"id": "x"}},
            {"jsonrpc": "2.0", "id": 11, "method": "NoSuch"}
        ]),
    )
    .await;
    let batch = batch.as_array().unwrap();
    assert_eq!(
        (batch[0]["id"].as_u64(), batch[0]["error"]["code"].as_i64()),
        (Some(10), Some(-32001))
    );
    assert_eq!(
        (batch[1]["id"].as_u64(), batch[1]["error"]["code"].as_i64()),
        (Some(11), Some(-32601))
    );
    let version = client
        .post(server.url("/"))
        .header("x-api-key", KEY)
        .header("a2a-version", "9.9")
        .json(&send(5, json!([{"text": "candidates"}])))
        .send()
        .await
        .unwrap();
    let version: Value = version.json().await.unwrap();
    assert_eq!(version["error"]["code"], -32009);
}

#[tokio::test]
async fn streaming_a_scan_sends_working_an_artifact_then_completed() {
    let server = spawn(&[]);
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "SendStreamingMessage",
        "params": {"message": {"messageId": "s1", "role": "ROLE_USER", "parts": [{"text": "scan inbox"}]}}});
    let response = reqwest::Client::new()
        .post(server.url("/"))
        .header("x-api-key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = response.text().await.unwrap();
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(events.iter().all(|e| e["id"] == 7 && e["jsonrpc"] == "2.0"));
    assert_eq!(
        events[0]["result"]["task"]["status"]["state"],
        "TASK_STATE_WORKING"
    );
    assert!(
        events
            .iter()
            .any(|e| e["result"]["artifactUpdate"]["artifact"]["parts"][0]["data"]["total"] == 300)
    );
    assert_eq!(
        events.last().unwrap()["result"]["statusUpdate"]["status"]["state"],
        "TASK_STATE_COMPLETED"
    );
}

#[tokio::test]
async fn the_per_tenant_rate_limit_answers_429_with_retry_after() {
    let server = spawn(&[("RATE_LIMIT_BURST", "1")]);
    let (status, _) = call(&server, key(), send(1, json!([{"text": "scan inbox"}]))).await;
    assert_eq!(status, 200);
    let response = reqwest::Client::new()
        .post(server.url("/"))
        .header("x-api-key", KEY)
        .json(&send(2, json!([{"text": "scan inbox"}])))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let (status, _) = call(&server, key(), send(3, json!([{"text": "candidates"}]))).await;
    assert_eq!(status, 200, "each operation has its own bucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_streamed_scan_reports_progress_and_can_be_canceled() {
    use quietbox_testkit::{FakeGoogle, FakeMessage, Faults};
    // A slow Gmail (the fake, 150 ms per call) so the scan is still running when we cancel.
    let fake = FakeGoogle::start("owner@example.com").await;
    fake.set_quota(1_000_000);
    fake.add_messages(
        (0..400)
            .map(|i| {
                FakeMessage::new(
                    &format!("m{i}"),
                    "n@news.example.com",
                    1_795_000_000_000 + i,
                    &[],
                )
            })
            .collect(),
    );
    fake.set_faults(Faults {
        latency: std::time::Duration::from_millis(150),
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token.json");
    std::fs::write(&token_file, json!({"refresh_token": "refresh-1", "token_uri": format!("{}/token", fake.base), "client_id": "c"}).to_string()).unwrap();
    let token_path = token_file.display().to_string();
    let env = env(
        dir.path(),
        &[
            ("MAIL_PROVIDER", "gmail"),
            ("GOOGLE_TOKEN_FILE", &token_path),
            ("GOOGLE_API_BASE_URL", &fake.base),
        ],
    );
    let server = binary::spawn(BIN, dir, &env);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage",
        "params": {"message": {"messageId": "s", "role": "ROLE_USER", "parts": [{"text": "scan inbox"}]}}});
    let mut response = reqwest::Client::new()
        .post(server.url("/"))
        .header("x-api-key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    let mut progress_seen = false;
    let task_id = loop {
        let chunk = response.chunk().await.unwrap().expect("stream open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if seen.contains("scanned ") {
            progress_seen = true;
        }
        let id = seen
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find_map(|e| e["result"]["task"]["id"].as_str().map(str::to_owned));
        if let (Some(id), true) = (id, progress_seen) {
            break id;
        }
    };
    let (_, canceled) = call(
        &server,
        key(),
        json!({"jsonrpc": "2.0", "id": 2, "method": "CancelTask", "params": {"id": task_id}}),
    )
    .await;
    assert_eq!(
        canceled["result"]["status"]["state"], "TASK_STATE_CANCELED",
        "{canceled}"
    );
    let rest = response.text().await.unwrap_or_default();
    assert!(
        !rest.contains("TASK_STATE_COMPLETED"),
        "a canceled scan does not complete"
    );
    let (_, got) = call(
        &server,
        key(),
        json!({"jsonrpc": "2.0", "id": 3, "method": "GetTask", "params": {"id": task_id}}),
    )
    .await;
    assert_eq!(got["result"]["status"]["state"], "TASK_STATE_CANCELED");
    let (_, again) = call(
        &server,
        key(),
        json!({"jsonrpc": "2.0", "id": 4, "method": "CancelTask", "params": {"id": task_id}}),
    )
    .await;
    assert_eq!(again["error"]["code"], -32002);
}
