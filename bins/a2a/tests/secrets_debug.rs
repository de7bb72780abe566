//! Secrets never reach the output of `quietbox-a2a`, even at `RUST_LOG=debug` (issue 11): a
//! scripted JSON-RPC session with an API key, HS256 JWTs, a Google refresh token and client
//! secret (the gmail provider against the fake Google), secrets in headers and query strings,
//! and failing requests; then stdout and stderr together must name none of them.

use quietbox_testkit::capture::{self, secrets};
use quietbox_testkit::{FakeGoogle, FakeMessage, Faults, binary};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_quietbox-a2a");

fn jwt(scopes: &str, secret: &str) -> String {
    let claims =
        json!({"sub": "agent-9", "aud": "quietbox", "scope": scopes, "exp": 4_000_000_000u64});
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

fn send(id: u64, text: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "SendMessage",
        "params": {"message": {"messageId": format!("m{id}"), "role": "ROLE_USER", "parts": [{"text": text}]}}})
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
    let client = reqwest::Client::new();
    let good = jwt("mail:scan unsubscribe:read", secrets::JWT_SECRET);
    let narrow = jwt("availability:read", secrets::JWT_SECRET);
    let forged = jwt("mail:scan", "not-the-secret-but-still-a-token-sig");
    let key = ("x-api-key", secrets::API_KEY);
    let rpc = server.url(&format!("/?{}", secrets::query()));

    let script = [
        client
            .post(&rpc)
            .header(key.0, key.1)
            .json(&send(1, "scan inbox")),
        client
            .post(&rpc)
            .bearer_auth(&good)
            .header("cookie", format!("session={}", secrets::COOKIE))
            .json(&send(2, "list candidates")),
        client
            .post(&rpc)
            .header(key.0, secrets::WRONG_KEY)
            .json(&send(3, "list candidates")),
        client
            .post(&rpc)
            .bearer_auth(&forged)
            .json(&send(4, "scan inbox")),
        client
            .post(&rpc)
            .bearer_auth(&narrow)
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
    fake.expire_access_tokens();
    fake.set_faults(Faults {
        fail_next: 20,
        ..Faults::default()
    });
    client
        .post(&rpc)
        .header(key.0, key.1)
        .json(&send(6, "scan inbox"))
        .send()
        .await
        .unwrap();
    fake.set_faults(Faults::default());
    let answer: Value = client
        .post(&rpc)
        .bearer_auth(&good)
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
