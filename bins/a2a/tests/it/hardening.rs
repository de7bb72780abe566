//! Issue 18 on the real binary: tasks belong to their creator, requests are bounded, tasks are
//! pruned, every skill is rate-limited, and a skill that panics fails its task.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{BIN, KEY, SECRET, call, env, key, send, spawn};
use quietbox_testkit::binary;

fn token_for(subject: &str, scopes: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"sub": subject, "aud": "quietbox", "scope": scopes, "exp": now + 600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn bearer(subject: &str, scopes: &str) -> (&'static str, String) {
    (
        "authorization",
        format!("Bearer {}", token_for(subject, scopes)),
    )
}

fn rpc(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

const ALL_SCOPES: &str =
    "availability:read mail:scan unsubscribe:read unsubscribe:execute unsubscribe:digest";

#[tokio::test]
async fn a_token_without_scope_cannot_list_read_or_cancel_the_owners_tasks() {
    let server = spawn(&[]);
    let (_, answer) = call(&server, key(), send(1, json!([{"text": "candidates"}]))).await;
    let id = answer["result"]["task"]["id"].as_str().unwrap().to_owned();
    let nobody = || bearer("agent-9", "");

    let (status, listed) = call(&server, nobody(), rpc(2, "ListTasks", json!({}))).await;
    assert_eq!(status, 200);
    assert_eq!(listed["result"]["totalSize"], 0, "{listed}");
    assert_eq!(listed["result"]["tasks"], json!([]));
    for (n, method) in ["GetTask", "CancelTask", "SubscribeToTask"]
        .into_iter()
        .enumerate()
    {
        let (_, answer) = call(
            &server,
            nobody(),
            rpc(3 + n as u64, method, json!({"id": id})),
        )
        .await;
        assert_eq!(answer["error"]["code"], -32001, "{method}: {answer}");
    }
    // A message continuing the owner's task by its id: the same answer.
    let mut next = send(9, json!([{"text": "candidates"}]));
    next["params"]["message"]["taskId"] = json!(id);
    let (_, answer) = call(&server, bearer("agent-9", ALL_SCOPES), next).await;
    assert_eq!(answer["error"]["code"], -32001, "{answer}");

    // The owner still sees and lists it.
    let (_, got) = call(&server, key(), rpc(10, "GetTask", json!({"id": id}))).await;
    assert_eq!(got["result"]["id"], id.as_str());
    let (_, listed) = call(&server, key(), rpc(11, "ListTasks", json!({}))).await;
    assert_eq!(listed["result"]["totalSize"], 1);
}

#[tokio::test]
async fn another_subjects_tasks_are_not_found_and_a_skills_scope_guards_its_task() {
    let server = spawn(&[]);
    let (status, answer) = call(
        &server,
        bearer("alice", "unsubscribe:read mail:scan"),
        send(1, json!([{"text": "candidates"}])),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["result"]["task"]["id"].as_str().unwrap().to_owned();
    let bob = || bearer("bob", ALL_SCOPES);
    for (n, method) in ["GetTask", "CancelTask", "SubscribeToTask"]
        .into_iter()
        .enumerate()
    {
        let (_, answer) = call(&server, bob(), rpc(2 + n as u64, method, json!({"id": id}))).await;
        assert_eq!(answer["error"]["code"], -32001, "{method}: {answer}");
    }
    let (_, listed) = call(&server, bob(), rpc(5, "ListTasks", json!({}))).await;
    assert_eq!(listed["result"]["totalSize"], 0);
    let (_, listed) = call(&server, key(), rpc(6, "ListTasks", json!({}))).await;
    assert_eq!(
        listed["result"]["totalSize"], 0,
        "the API key is a principal too"
    );

    // Alice without the candidates skill's scope: a 403 naming it, and her list leaves it out.
    let scan_only = || bearer("alice", "mail:scan");
    let (status, answer) = call(&server, scan_only(), rpc(7, "GetTask", json!({"id": id}))).await;
    assert_eq!(
        (status, answer["scope"].as_str()),
        (403, Some("unsubscribe:read"))
    );
    let (_, listed) = call(&server, scan_only(), rpc(8, "ListTasks", json!({}))).await;
    assert_eq!(listed["result"]["totalSize"], 0);
    let (_, got) = call(
        &server,
        bearer("alice", "unsubscribe:read"),
        rpc(9, "GetTask", json!({"id": id})),
    )
    .await;
    assert_eq!(got["result"]["status"]["state"], "TASK_STATE_COMPLETED");
    // Her own finished task takes no further message.
    let mut next = send(10, json!([{"text": "candidates"}]));
    next["params"]["message"]["taskId"] = json!(id);
    let (_, answer) = call(&server, bearer("alice", "unsubscribe:read"), next).await;
    assert_eq!(answer["error"]["code"], -32004, "{answer}");
}

#[tokio::test]
async fn batches_parts_and_message_size_are_capped_with_errors_naming_the_limit() {
    let server = spawn(&[]);
    let (_, answer) = call(&server, key(), send(1, json!([{"text": "scan inbox"}]))).await;
    assert_eq!(
        answer["result"]["task"]["status"]["state"],
        "TASK_STATE_COMPLETED"
    );
    let list = |n: u64| rpc(n, "ListTasks", json!({"pageSize": 100}));
    let (status, refused) = call(&server, key(), Value::Array((0..30).map(list).collect())).await;
    assert_eq!(status, 200);
    assert_eq!(refused["error"]["code"], -32600, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 16 requests"),
        "{refused}"
    );
    let (_, answered) = call(&server, key(), Value::Array((0..16).map(list).collect())).await;
    let answered = answered.as_array().unwrap();
    assert_eq!(answered.len(), 16);
    // A listed task leaves its artifacts out unless asked: a page stays small.
    assert!(answered[0]["result"]["tasks"][0].get("artifacts").is_none());
    let (_, full) = call(
        &server,
        key(),
        rpc(40, "ListTasks", json!({"includeArtifacts": true})),
    )
    .await;
    assert_eq!(
        full["result"]["tasks"][0]["artifacts"][0]["parts"][0]["data"]["total"],
        300
    );

    let parts: Vec<Value> = (0..33).map(|_| json!({"text": "candidates"})).collect();
    let (_, answer) = call(&server, key(), send(41, Value::Array(parts))).await;
    assert_eq!(answer["error"]["code"], -32602);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 32 parts"),
        "{answer}"
    );
    let big = format!("candidates {}", "x".repeat(70 * 1024));
    let (_, answer) = call(&server, key(), send(42, json!([{"text": big}]))).await;
    assert_eq!(answer["error"]["code"], -32602);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("65536 bytes"),
        "{answer}"
    );
}

#[tokio::test]
async fn tasks_beyond_a2a_max_tasks_are_pruned() {
    let server = spawn(&[("A2A_MAX_TASKS", "3"), ("RATE_LIMIT_READ_BURST", "100")]);
    let mut ids = Vec::new();
    for n in 0..5 {
        let (_, answer) = call(&server, key(), send(n, json!([{"text": "candidates"}]))).await;
        ids.push(answer["result"]["task"]["id"].as_str().unwrap().to_owned());
    }
    let (_, listed) = call(&server, key(), rpc(9, "ListTasks", json!({}))).await;
    assert_eq!(listed["result"]["totalSize"], 3, "{listed}");
    let (_, oldest) = call(&server, key(), rpc(10, "GetTask", json!({"id": ids[0]}))).await;
    assert_eq!(oldest["error"]["code"], -32001);
    let (_, newest) = call(&server, key(), rpc(11, "GetTask", json!({"id": ids[4]}))).await;
    assert_eq!(newest["result"]["id"], ids[4].as_str());
    let dir = tempfile::tempdir().unwrap();
    let bad = binary::command(BIN, &env(dir.path(), &[("A2A_MAX_TASKS", "0")]))
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("A2A_MAX_TASKS"));
}

#[tokio::test]
async fn a_read_skill_gets_429_once_its_bucket_is_empty() {
    let limits = [
        ("RATE_LIMIT_PER_MIN", "1"),
        ("RATE_LIMIT_BURST", "1"),
        ("RATE_LIMIT_READ_PER_MIN", "1"),
        ("RATE_LIMIT_READ_BURST", "1"),
    ];
    let server = spawn(&limits);
    let mut limited = None;
    for n in 0..10 {
        let response = reqwest::Client::new()
            .post(server.url("/"))
            .header("x-api-key", KEY)
            .json(&send(
                n,
                json!([{"data": {"skill": "unsubscribe_compliance", "args": {}}}]),
            ))
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            limited = Some((n, response.headers().contains_key("retry-after")));
            break;
        }
        assert_eq!(response.status(), 200);
    }
    let (n, retry_after) = limited.expect("a read skill is rate-limited");
    assert!(n >= 1 && retry_after);
}

#[tokio::test]
async fn arguments_that_once_panicked_are_refused_before_any_task_naming_the_argument() {
    // slot_minutes = i64::MAX made the availability skill panic; the typed arguments bound it
    // first: -32602 naming slot_minutes, streamed or not, and no task is left behind.
    let server = spawn(&[]);
    let args =
        json!({"skill": "availability", "args": {"slot_minutes": 9_223_372_036_854_775_807_i64}});
    // Refused before streaming starts: a JSON answer, not an event stream.
    let (_, streamed) = call(
        &server,
        key(),
        json!({"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage",
            "params": {"message": {"messageId": "p1", "role": "ROLE_USER", "parts": [{"data": args}]}}}),
    )
    .await;
    assert_eq!(streamed["error"]["code"], -32602, "{streamed}");
    assert_eq!(
        streamed["error"]["data"]["field"], "slot_minutes",
        "{streamed}"
    );
    let (status, answer) = call(&server, key(), send(3, json!([{"data": args}]))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    assert_eq!(
        answer["error"]["data"]["code"], "invalid_request",
        "{answer}"
    );
    let (_, listed) = call(
        &server,
        key(),
        json!({"jsonrpc": "2.0", "id": 4, "method": "ListTasks", "params": {}}),
    )
    .await;
    assert_eq!(listed["result"]["tasks"], json!([]), "{listed}");
}

#[tokio::test]
async fn bad_skill_arguments_are_invalid_params_naming_the_field() {
    let server = spawn(&[]);
    for (args, field, code) in [
        (
            json!({"skill": "scan_inbox", "args": {"limit": 5000}}),
            "limit",
            "invalid_request",
        ),
        (
            json!({"skill": "scan_inbox", "args": {"limit": 1, "lmit": 2}}),
            "lmit",
            "malformed_body",
        ),
        (
            json!({"skill": "unsubscribe_history", "args": {"sender": 7}}),
            "sender",
            "malformed_body",
        ),
        (
            json!({"skill": "sender_decision", "args": {"sender": "a@b.example"}}),
            "decision",
            "malformed_body",
        ),
        (
            json!({"skill": "unsubscribe_candidates", "args": [1]}),
            "",
            "invalid_request",
        ),
    ] {
        let (status, answer) = call(&server, key(), send(1, json!([{"data": args}]))).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["error"]["code"], -32602, "{args}: {answer}");
        assert_eq!(answer["error"]["data"]["code"], code, "{args}: {answer}");
        if !field.is_empty() {
            assert_eq!(answer["error"]["data"]["field"], field, "{args}: {answer}");
            assert!(
                answer["error"]["message"].as_str().unwrap().contains(field),
                "{answer}"
            );
        }
    }
}

#[tokio::test]
async fn a_failed_task_carries_the_core_code_in_its_status_message() {
    let server = spawn(&[]);
    let (_, answer) = call(&server, key(), send(1, json!([{"data": {"skill": "unsubscribe", "args": {"sender": "nobody@nowhere.example"}}}]))).await;
    let status = &answer["result"]["task"]["status"];
    assert_eq!(status["state"], "TASK_STATE_FAILED", "{answer}");
    assert_eq!(
        status["message"]["parts"][1]["data"]["code"], "not_found",
        "{answer}"
    );
    // JSON-RPC errors carry a code too.
    let (_, missing) = call(
        &server,
        key(),
        json!({"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": "nope"}}),
    )
    .await;
    assert_eq!(missing["error"]["code"], -32001);
    assert_eq!(missing["error"]["data"]["code"], "not_found", "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_subscribes_to_a_working_task_until_it_completes() {
    use quietbox_core::store::{StateStore, TaskOwner, TaskRecord};
    let server = spawn(&[]);
    // A task working on another replica: written straight into the shared data directory.
    let store = quietbox_state::FileStore::open(server.dir.path().join("data")).unwrap();
    let record = |state: &str| TaskRecord {
        id: "t-elsewhere".into(),
        context_id: "c1".into(),
        state: state.into(),
        payload: json!({"id": "t-elsewhere", "contextId": "c1", "status": {"state": state},
            "artifacts": [{"artifactId": "a1", "parts": [{"text": "done"}]}]}),
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
        owner: TaskOwner::legacy(),
        skill: Some("scan_inbox".into()),
    };
    store.put_task(record("TASK_STATE_WORKING")).await.unwrap();
    let subscribe = rpc(1, "SubscribeToTask", json!({"id": "t-elsewhere"}));
    let reader = tokio::spawn({
        let url = server.url("/");
        async move {
            reqwest::Client::new()
                .post(url)
                .header("x-api-key", KEY)
                .json(&subscribe)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    store
        .put_task(record("TASK_STATE_COMPLETED"))
        .await
        .unwrap();
    let text = tokio::time::timeout(std::time::Duration::from_secs(10), reader)
        .await
        .expect("the stream ends at the final state")
        .unwrap();
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(
        events[0]["result"]["task"]["status"]["state"],
        "TASK_STATE_WORKING"
    );
    assert_eq!(
        events[1]["result"]["artifactUpdate"]["artifact"]["artifactId"],
        "a1"
    );
    assert_eq!(
        events.last().unwrap()["result"]["statusUpdate"]["status"]["state"],
        "TASK_STATE_COMPLETED"
    );
    // A final task has nothing left to stream.
    let (_, answer) = call(
        &server,
        key(),
        rpc(2, "SubscribeToTask", json!({"id": "t-elsewhere"})),
    )
    .await;
    assert_eq!(answer["error"]["code"], -32004, "{answer}");
}
