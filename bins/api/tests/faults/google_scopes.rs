//! Issue 22 item 5 at the edge: the real `quietbox-api` on testkit's fake Google with a
//! `token.json` that records the scopes Google granted (as `login` writes it). With
//! `UNSUBSCRIBE_ENFORCE=archive` and the archive scopes not granted, the start warns naming them,
//! and archiving fails with a named 502 before anything is asked of Google.

use std::time::Duration;

use quietbox_testkit::binary::{self, with};
use quietbox_testkit::{FakeGoogle, FakeMessage, scopes};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_quietbox-api");
const KEY: &str = quietbox_testkit::API_KEY;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_enforcement_without_the_granted_scopes_warns_at_start_and_archiving_names_the_scope()
 {
    let fake = FakeGoogle::start("owner@example.com").await;
    fake.grant_scopes("refresh-1", scopes::DEFAULT);
    fake.add_messages(vec![FakeMessage::new(
        "g1",
        "\"Gadget News\" <news@gadgets.example.com>",
        1_795_000_000_000,
        &[("List-Id", "<news.gadgets.example.com>")],
    )]);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token.json");
    std::fs::write(
        &token,
        json!({"refresh_token": "refresh-1", "token_uri": format!("{}/token", fake.base),
            "client_id": "c", "scopes": scopes::DEFAULT})
        .to_string(),
    )
    .unwrap();
    let env = with(
        binary::base_env(dir.path()),
        &[
            ("AUTH_MODE", "api_key"),
            ("AGENT_API_KEY", KEY),
            ("MAIL_PROVIDER", "gmail"),
            ("GOOGLE_TOKEN_FILE", &token.display().to_string()),
            ("GOOGLE_API_BASE_URL", &fake.base),
            ("UNSUBSCRIBE_ENFORCE", "archive"),
        ],
    );
    let server = binary::spawn(BIN, dir, &env);
    let logs = server.logs();
    assert!(
        logs.contains("UNSUBSCRIBE_ENFORCE=archive")
            && logs.contains(scopes::GMAIL_MODIFY)
            && logs.contains(scopes::GMAIL_SETTINGS_BASIC),
        "{logs}"
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let response = http
        .put(server.url("/v1/senders/news@gadgets.example.com/decision"))
        .header("x-api-key", KEY)
        .json(&json!({"decision": "auto_archive"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "upstream_scope_missing");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains(scopes::GMAIL_SETTINGS_BASIC) && detail.contains("login --archive"),
        "{detail}"
    );
    assert_eq!(
        fake.calls("settings.filters.create"),
        0,
        "refused from the recorded scopes, without asking Google"
    );
}
