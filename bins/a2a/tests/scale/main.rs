//! Two `quietbox-a2a` replicas on one PostgreSQL schema (issue 14): a task created on one is
//! read, listed and cancelled on the other, and a cancel from another replica is not undone by
//! the replica that ran the task. Needs `QUIETBOX_TEST_DATABASE_URL`; prints `SKIPPED:` without.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::Utc;
use quietbox_core::store::{StateStore, TaskRecord};
use quietbox_state::PgStore;
use quietbox_testkit::binary::{self, Server, with};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_quietbox-a2a");
const KEY: &str = quietbox_testkit::API_KEY;

async fn call(server: &Server, body: Value) -> Value {
    reqwest::Client::new()
        .post(server.url("/"))
        .header("x-api-key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn rpc(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_created_on_one_replica_is_read_listed_and_canceled_on_another() {
    let Ok(base) = std::env::var("QUIETBOX_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED: QUIETBOX_TEST_DATABASE_URL is not set");
        return;
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let schema = format!("qb_a2a_scale_{}_{nanos}", std::process::id());
    let store = PgStore::connect_with_schema(&base, &schema).await.unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
    let replicas: Vec<Server> = (0..2)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let env = with(
                binary::base_env(dir.path()),
                &[
                    ("AUTH_MODE", "api_key"),
                    ("AGENT_API_KEY", KEY),
                    ("STATE_BACKEND", "postgres"),
                    ("DATABASE_URL", &url),
                ],
            );
            binary::spawn(BIN, dir, &env)
        })
        .collect();
    let (a, b) = (&replicas[0], &replicas[1]);

    let sent = call(
        a,
        rpc(
            1,
            "SendMessage",
            json!({"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "list candidates"}]}}),
        ),
    )
    .await;
    let id = sent["result"]["task"]["id"].as_str().unwrap().to_owned();
    let got = call(b, rpc(2, "GetTask", json!({"id": id}))).await;
    assert_eq!(got["result"]["status"]["state"], "TASK_STATE_COMPLETED");
    let listed = call(b, rpc(3, "ListTasks", json!({}))).await;
    assert_eq!(listed["result"]["tasks"][0]["id"], id.as_str(), "{listed}");
    let refused = call(b, rpc(4, "CancelTask", json!({"id": id}))).await;
    assert_eq!(
        refused["error"]["code"], -32002,
        "a completed task stays so"
    );

    // A task still working on some replica (stored as the running replica stores it).
    let now = Utc::now();
    let working = |state: &str| TaskRecord {
        id: "t-running".into(),
        context_id: "c1".into(),
        state: state.into(),
        payload: json!({"id": "t-running", "contextId": "c1", "status": {"state": state}}),
        created_at: now,
        updated_at: now,
        owner: quietbox_core::store::TaskOwner::legacy(),
        skill: Some("scan_inbox".into()),
    };
    store.put_task(working("TASK_STATE_WORKING")).await.unwrap();
    let canceled = call(b, rpc(5, "CancelTask", json!({"id": "t-running"}))).await;
    assert_eq!(
        canceled["result"]["status"]["state"], "TASK_STATE_CANCELED",
        "{canceled}"
    );
    // The replica that ran it finishes afterwards: its final write does not undo the cancel.
    store
        .put_task(working("TASK_STATE_COMPLETED"))
        .await
        .unwrap();
    let seen = call(a, rpc(6, "GetTask", json!({"id": "t-running"}))).await;
    assert_eq!(
        seen["result"]["status"]["state"], "TASK_STATE_CANCELED",
        "{seen}"
    );
    use sqlx::Executor;
    let _ = store
        .pool()
        .execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE").as_str())
        .await;
}
