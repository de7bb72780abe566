//! Issue 22 item 2 at the HTTP edge: the real `quietbox-api` on testkit's fake Google. When
//! Google asks to wait longer than `GOOGLE_RETRY_AFTER_MAX_S` (in seconds or as an HTTP date),
//! the request is not held: it fails at once with a 503 `upstream_rate_limited` problem carrying
//! Google's wait as its own `Retry-After`.

use std::time::{Duration, Instant};

use quietbox_testkit::FakeGoogle;
use quietbox_testkit::binary::{self, with};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_quietbox-api");
const KEY: &str = quietbox_testkit::API_KEY;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_beyond_the_cap_is_a_503_with_googles_wait_in_both_forms() {
    let fake = FakeGoogle::start("owner@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token.json");
    std::fs::write(
        &token,
        json!({"refresh_token": "refresh-1", "token_uri": format!("{}/token", fake.base), "client_id": "c"})
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
            ("GOOGLE_RETRY_AFTER_MAX_S", "5"),
        ],
    );
    let server = binary::spawn(BIN, dir, &env);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let in_ten_minutes = (chrono::Utc::now() + chrono::Duration::seconds(600))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    for (status, retry_after, expected) in [
        (429, "3600".to_owned(), 3600..=3600),
        (503, in_ten_minutes, 590..=600),
    ] {
        fake.fail_with_retry_after(1, status, &retry_after);
        let started = Instant::now();
        let response = http
            .post(server.url("/v1/mail/scan"))
            .header("x-api-key", KEY)
            .json(&json!({"limit": 10}))
            .send()
            .await
            .unwrap();
        let took = started.elapsed();
        assert_eq!(response.status().as_u16(), 503, "Google's {status}");
        let wait: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(expected.contains(&wait), "{wait} for {retry_after}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "upstream_rate_limited", "{body}");
        assert!(
            body["detail"].as_str().unwrap().contains("asks to wait"),
            "{body}"
        );
        assert!(took < Duration::from_secs(5), "not held: {took:?}");
    }
}
