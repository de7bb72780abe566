//! Secrets never reach the output of `quietbox-a2a`, even at `RUST_LOG=debug` (issue 11): a
//! scripted JSON-RPC session with an API key, HS256 JWTs, a Google refresh token and client
//! secret (the gmail provider against the fake Google), secrets in headers and query strings,
//! and failing requests; then stdout and stderr together must name none of them.

use quietbox_testkit::capture::secrets::{self, Session as Subject, Tokens};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_quietbox-a2a");

fn send(id: u64, text: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "SendMessage",
        "params": {"message": {"messageId": format!("m{id}"), "role": "ROLE_USER", "parts": [{"text": text}]}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_of_a_whole_session_carry_no_secret() {
    let subject = Subject::start(BIN).await;
    let server = &subject.server;
    let client = reqwest::Client::new();
    let tokens = Tokens::mint("agent-9");
    let (good, narrow, forged) = (&tokens.good, &tokens.narrow, &tokens.forged);
    let key = ("x-api-key", secrets::API_KEY);
    let rpc = server.url(&format!("/?{}", secrets::query()));

    let script = [
        client
            .post(&rpc)
            .header(key.0, key.1)
            .json(&send(1, "scan inbox")),
        client
            .post(&rpc)
            .bearer_auth(good)
            .header("cookie", format!("session={}", secrets::COOKIE))
            .json(&send(2, "list candidates")),
        client
            .post(&rpc)
            .header(key.0, secrets::WRONG_KEY)
            .json(&send(3, "list candidates")),
        client
            .post(&rpc)
            .bearer_auth(forged)
            .json(&send(4, "scan inbox")),
        client
            .post(&rpc)
            .bearer_auth(narrow)
            .json(&send(5, "scan inbox")),
        client
            .post(&rpc)
            .header(key.0, key.1)
            .header("content-type", "application/json")
            .body("{not json"),
    ];
    let mut statuses = Vec::new();
    for request in script {
        let response = request.send().await.unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses[2..4], [401, 401], "{statuses:?}");
    // Failing Google calls and a token refresh, logged at debug by the HTTP client stack.
    subject.break_google();
    client
        .post(&rpc)
        .header(key.0, key.1)
        .json(&send(6, "scan inbox"))
        .send()
        .await
        .unwrap();
    subject.heal_google();
    let answer: Value = client
        .post(&rpc)
        .bearer_auth(good)
        .json(&send(7, "scan inbox"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["result"]["task"]["status"]["state"], "TASK_STATE_COMPLETED",
        "{answer}"
    );

    subject.finish(&tokens);
}
