//! quietbox-api with `MAIL_PROVIDER=gmail` starts while Google's token endpoint is down:
//! `/health` 200, `/ready` 503 naming `google`, a scan 502; it connects in the background and
//! serves normally once the endpoint is back, without a restart.

use std::time::{Duration, Instant};

use quietbox_testkit::binary::{self, with};
use quietbox_testkit::{FakeGoogle, FakeMessage, TokenOutage};
use serde_json::{Value, json};

use crate::harness::{BIN, KEY, base_env};

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_starts_while_the_google_token_endpoint_is_down_and_recovers_without_a_restart() {
    let fake = FakeGoogle::start("owner@example.com").await;
    fake.add_messages(vec![FakeMessage::new(
        "m1",
        "\"News\" <news@letters.example.com>",
        1_795_000_000_000,
        &[("List-Id", "<list.letters.example.com>")],
    )]);
    fake.set_token_outage(Some(TokenOutage::Unavailable));
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token.json");
    std::fs::write(
        &token,
        json!({"refresh_token": "refresh-1", "token_uri": format!("{}/token", fake.base), "client_id": "c"})
            .to_string(),
    )
    .unwrap();
    let env = with(
        base_env(dir.path()),
        &[
            ("MAIL_PROVIDER", "gmail"),
            ("GOOGLE_TOKEN_FILE", &token.display().to_string()),
            ("GOOGLE_API_BASE_URL", &fake.base),
        ],
    );
    // Before the fix the binary exited here ("Gmail: …") and spawn saw no `listening on`.
    let server = binary::spawn(BIN, dir, &env);
    let client = reqwest::Client::new();

    let (status, health) = get(&client, server.url("/health")).await;
    assert_eq!(status, 200, "{health}");
    let (status, ready) = get(&client, server.url("/ready")).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["missing"], json!(["google"]), "{ready}");
    let scan = client
        .post(server.url("/v1/mail/scan"))
        .header("x-api-key", KEY)
        .json(&json!({"limit": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(scan.status().as_u16(), 502);
    let problem: Value = scan.json().await.unwrap();
    assert_eq!(problem["code"], "upstream_unavailable", "{problem}");
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("dependency_failures_total{dependency=\"google\"}"),
        "{metrics}"
    );

    fake.set_token_outage(None);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get(&client, server.url("/ready")).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let scan = client
        .post(server.url("/v1/mail/scan"))
        .header("x-api-key", KEY)
        .json(&json!({"limit": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(scan.status().as_u16(), 200, "{}", server.logs());
    assert!(
        server.logs().contains("google unreachable"),
        "each failure is logged"
    );
}
