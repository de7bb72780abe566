//! Secrets never reach the output of `quietbox-api`, even at `RUST_LOG=debug` (issue 11): a
//! scripted session with an API key, HS256 JWTs, a Google refresh token and client secret (the
//! gmail provider against the fake Google), secrets in headers and query strings, and failing
//! requests; then stdout and stderr together must name none of them.

use quietbox_testkit::capture::secrets::{self, Session as Subject, Tokens};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_quietbox-api");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_of_a_whole_session_carry_no_secret() {
    let subject = Subject::start(BIN).await;
    let server = &subject.server;
    let client = reqwest::Client::new();
    let tokens = Tokens::mint("user-7");
    let (good, narrow, forged) = (&tokens.good, &tokens.narrow, &tokens.forged);
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
            .bearer_auth(good)
            .header("cookie", format!("session={}", secrets::COOKIE)),
        client.get(&candidates).header(key.0, key.1),
        client.get(&candidates).header(key.0, secrets::WRONG_KEY),
        client.get(&candidates).bearer_auth(forged),
        client.get(&candidates).bearer_auth(narrow),
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
    subject.break_google();
    let failed = client
        .post(server.url(&format!("/v1/mail/scan?{query}")))
        .header(key.0, key.1)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(failed.status().is_server_error(), "{}", failed.status());
    subject.heal_google();
    let again = client
        .post(server.url("/v1/mail/scan"))
        .bearer_auth(good)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);

    let output = subject.finish(&tokens);
    assert!(output.contains("/v1/unsubscribe/candidates"), "{output}");
}
