//! Secrets never reach the output of `quietbox-api`, even at `RUST_LOG=debug` (issue 11): a
//! scripted session with an API key, HS256 JWTs, a Google refresh token and client secret (the
//! gmail provider against the fake Google), secrets in headers and query strings, and failing
//! requests; then stdout and stderr together must name none of them.

use quietbox_testkit::capture::{self, secrets};
use quietbox_testkit::{FakeGoogle, FakeMessage, Faults, binary};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_quietbox-api");

fn jwt(scopes: &str, secret: &str) -> String {
    let claims =
        json!({"sub": "user-7", "aud": "quietbox", "scope": scopes, "exp": 4_000_000_000u64});
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
    let query = secrets::query();
    let candidates = server.url(&format!("/v1/unsubscribe/candidates?{query}"));

    let scan = client
        .post(server.url("/v1/mail/scan"))
        .header(key.0, key.1)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(scan.status(), 200, "{}", scan.text().await.unwrap());
    let statuses = [
        client
            .get(&candidates)
            .bearer_auth(&good)
            .header("cookie", format!("session={}", secrets::COOKIE)),
        client.get(&candidates).header(key.0, key.1),
        client.get(&candidates).header(key.0, secrets::WRONG_KEY),
        client.get(&candidates).bearer_auth(&forged),
        client.get(&candidates).bearer_auth(&narrow),
        client
            .get(server.url(&format!("/v1/no-such-route?{query}")))
            .header(key.0, key.1),
        client
            .post(server.url(&format!("/v1/unsubscribe?{query}")))
            .header(key.0, key.1)
            .header("content-type", "application/json")
            .body("{not json"),
    ];
    let mut seen = Vec::new();
    for request in statuses {
        seen.push(request.send().await.unwrap().status().as_u16());
    }
    assert_eq!(seen, [200, 200, 401, 401, 403, 404, 400], "the script ran");
    // Failing Google calls and a token refresh, logged at debug by the HTTP client stack.
    fake.expire_access_tokens();
    fake.set_faults(Faults {
        fail_next: 20,
        ..Faults::default()
    });
    let failed = client
        .post(server.url(&format!("/v1/mail/scan?{query}")))
        .header(key.0, key.1)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(failed.status().is_server_error(), "{}", failed.status());
    fake.set_faults(Faults::default());
    let again = client
        .post(server.url("/v1/mail/scan"))
        .bearer_auth(&good)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);

    let output = server.finish();
    assert!(output.contains("/v1/unsubscribe/candidates"), "{output}");
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
