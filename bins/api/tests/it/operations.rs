//! Operations: idempotency, rate limits, incident mode across processes, start-up errors,
//! metrics, and secrets kept out of logs.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{KEY, base_env, command, spawn, spawn_in, token};

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_body() {
    let server = spawn(&[]);
    let send = |body: Value| {
        server
            .client
            .post(server.url("/v1/unsubscribe"))
            .header("x-api-key", KEY)
            .header("idempotency-key", "abc-1")
            .json(&body)
            .send()
    };
    let first = send(json!({"sender": "lug@lists.example.org"}))
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["result"], "unsubscribed");
    let replay = send(json!({"sender": "lug@lists.example.org"}))
        .await
        .unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(
        replay.json::<Value>().await.unwrap(),
        first,
        "same answer, not 'already done'"
    );
    let outbox = server.dir.path().join("data/outbox");
    assert_eq!(
        std::fs::read_dir(&outbox).unwrap().count(),
        1,
        "one unsubscribe mail, not two"
    );
    let conflict = send(json!({"sender": "members@garden.example.com"}))
        .await
        .unwrap();
    assert_eq!(conflict.status(), 409);
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after_then_recovers() {
    let server = spawn(&[("RATE_LIMIT_PER_MIN", "60"), ("RATE_LIMIT_BURST", "1")]);
    let scan = || {
        server
            .client
            .post(server.url("/v1/mail/scan"))
            .bearer_auth(token("mail:scan"))
            .json(&json!({"limit": 1}))
            .send()
    };
    assert_eq!(scan().await.unwrap().status(), 200);
    let limited = scan().await.unwrap();
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    // Another tenant (the API key's) is not affected.
    let other = server
        .client
        .post(server.url("/v1/mail/scan"))
        .header("x-api-key", KEY)
        .json(&json!({"limit": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(scan().await.unwrap().status(), 200, "the budget refills");
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("rate_limited_total{operation=\"scan\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "http_requests_total{endpoint=\"/v1/mail/scan\",method=\"POST\",status=\"429\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_incident_started_from_the_cli_blocks_mutations_until_its_ttl() {
    let server = spawn(&[]);
    let env = base_env(server.dir.path());
    let output = command(&env)
        .args(["incident", "start", "--ttl", "3s", "--reason", "drill"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("incident mode active until"));
    let unsubscribe = || {
        server
            .client
            .post(server.url("/v1/unsubscribe"))
            .header("x-api-key", KEY)
            .json(&json!({"sender": "members@garden.example.com"}))
            .send()
    };
    let blocked = unsubscribe().await.unwrap();
    assert_eq!(blocked.status(), 503);
    let problem: Value = blocked.json().await.unwrap();
    assert_eq!(problem["code"], "incident_mode_active");
    assert!(problem["detail"].as_str().unwrap().contains("drill"));
    // Reads keep working.
    let candidates = server
        .client
        .get(server.url("/v1/unsubscribe/candidates"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(candidates.status(), 200);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(
        unsubscribe().await.unwrap().status(),
        200,
        "the incident reverted by itself"
    );
    let status = command(&env).args(["incident", "status"]).output().unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("\"active\": false"));
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.push(("AUTH_MODE".into(), "magic".into()));
    let output = command(&env).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("AUTH_MODE") && stderr.contains("api_key, jwt, hybrid"),
        "{stderr}"
    );
}

#[test]
fn a_corrupt_state_file_stops_start_up_naming_the_file_and_keeps_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("sent_unsubscribe_links.json"),
        b"{\"version\":1,\"links\":[",
    )
    .unwrap();
    let output = command(&base_env(dir.path())).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("sent_unsubscribe_links.json") && stderr.contains("corrupt"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(data.join("sent_unsubscribe_links.json")).unwrap(),
        b"{\"version\":1,\"links\":["
    );
}

#[tokio::test]
async fn secrets_in_headers_and_query_strings_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_in(dir, &[("LOG_FORMAT", "json")]);
    let jwt = token("mail:scan unsubscribe:read");
    let secrets = [
        KEY,
        jwt.as_str(),
        "cookie-secret-123",
        "query-token-456",
        "query-key-789",
        "oauth-code-000",
    ];
    let url = server.url(
        "/v1/unsubscribe/candidates?token=query-token-456&key=query-key-789&code=oauth-code-000",
    );
    for request in [
        server
            .client
            .get(&url)
            .header("x-api-key", KEY)
            .header("cookie", "session=cookie-secret-123"),
        server.client.get(&url).bearer_auth(&jwt),
        server
            .client
            .get(&url)
            .header("x-api-key", "wrong-key-is-also-secret"),
    ] {
        request.send().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = server.logs();
    assert!(
        logs.contains("/v1/unsubscribe/candidates"),
        "the requests were logged: {logs}"
    );
    assert!(logs.contains("token=[redacted]"), "{logs}");
    for secret in secrets
        .iter()
        .chain(&["wrong-key-is-also-secret", crate::harness::SECRET])
    {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
}

fn runs_in(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("scheduler_runs_total{") && l.contains("job=\"digest\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn two_processes_with_a_one_second_cron_run_each_tick_once() {
    let dir = tempfile::tempdir().unwrap();
    let cron = [
        ("SCHEDULER_ENABLED", "true"),
        ("DIGEST_CRON", "* * * * * *"),
    ];
    let first = spawn_in(dir, &cron);
    // The second process shares the first one's DATA_DIR.
    let shared = tempfile::tempdir().unwrap();
    let data = first.dir.path().join("data");
    let second = crate::harness::spawn_in(
        shared,
        &[cron[0], cron[1], ("DATA_DIR", data.to_str().unwrap())],
    );
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let metrics_a = first
        .client
        .get(first.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metrics_b = second
        .client
        .get(second.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (a, b) = (runs_in(&metrics_a), runs_in(&metrics_b));
    let claims = std::fs::read_to_string(data.join("idempotency.json")).unwrap();
    let claimed = claims.matches("\"scheduler:digest:20").count();
    assert!(
        (1..=6).contains(&(a + b)),
        "about one run per second in all: {a} + {b}"
    );
    // Every counted run claimed an occurrence of its own, so no tick ran twice. A run may be
    // claimed but still in flight when the metrics are read (at most one per process), so the
    // claims may lead the counters by up to two, never trail them.
    let claimed = claimed as u64;
    assert!(
        a + b <= claimed && claimed <= a + b + 2,
        "runs {a} + {b} against {claimed} claimed occurrences"
    );
    let digests = std::fs::read_dir(data.join("outbox"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(
        digests, 1,
        "the first tick sent the digest; later ticks found nothing new"
    );
}

// Multi-threaded: the harness blocks a thread reading the child's first line while the fake
// Google, on this runtime, must answer the child's start-up calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mail_provider_gmail_the_api_reads_the_fake_google_mailbox() {
    use quietbox_testkit::{FakeGoogle, FakeMessage};
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
    let token = dir.path().join("token.json");
    std::fs::write(&token, json!({"refresh_token": "refresh-1", "token_uri": format!("{}/token", fake.base), "client_id": "c"}).to_string()).unwrap();
    let token = token.display().to_string();
    let server = spawn_in(
        dir,
        &[
            ("MAIL_PROVIDER", "gmail"),
            ("GOOGLE_TOKEN_FILE", &token),
            ("GOOGLE_API_BASE_URL", &fake.base),
        ],
    );
    let body: Value = server
        .client
        .get(server.url("/v1/unsubscribe/candidates"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["candidates"][0]["sender"]["address"], "news@gadgets.example.com",
        "{body}"
    );
    assert_eq!(body["candidates"][0]["method"], "one_click");
}

#[test]
fn with_mail_provider_gmail_and_no_token_start_up_says_to_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.push(("MAIL_PROVIDER".into(), "gmail".into()));
    env.push((
        "GOOGLE_TOKEN_FILE".into(),
        dir.path().join("missing.json").display().to_string(),
    ));
    let output = command(&env).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("login"), "{stderr}");
}

#[tokio::test]
async fn ready_turns_503_when_the_mailbox_disappears() {
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join("inbox.mbox");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/sample/inbox.mbox"),
        &mbox,
    )
    .unwrap();
    let mbox_path = mbox.display().to_string();
    let server = spawn_in(dir, &[("LOCAL_MBOX", &mbox_path)]);
    assert_eq!(
        server
            .client
            .get(server.url("/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    std::fs::remove_file(&mbox).unwrap();
    let response = server
        .client
        .get(server.url("/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], "not_ready");
}

#[tokio::test]
async fn in_jwt_mode_the_api_key_is_no_credential_and_in_api_key_mode_a_jwt_is_none() {
    let jwt_only = spawn(&[("AUTH_MODE", "jwt")]);
    let path = "/v1/unsubscribe/candidates";
    assert_eq!(
        jwt_only
            .client
            .get(jwt_only.url(path))
            .header("x-api-key", KEY)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        jwt_only
            .client
            .get(jwt_only.url(path))
            .bearer_auth(token("unsubscribe:read"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let key_only = spawn(&[("AUTH_MODE", "api_key")]);
    assert_eq!(
        key_only
            .client
            .get(key_only.url(path))
            .bearer_auth(token("unsubscribe:read"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        key_only
            .client
            .get(key_only.url(path))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_sender_decision_keeps_its_actor_survives_a_restart_and_shows_in_the_sender_view() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let first = spawn(&[("DATA_DIR", &data_dir)]);
    let response = first
        .client
        .put(first.url("/v1/senders/Deals@Shop.example.com/decision"))
        .bearer_auth(token("unsubscribe:execute"))
        .json(&json!({"decision": "keep"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let recorded: Value = response.json().await.unwrap();
    assert_eq!(
        (
            &recorded["sender"],
            &recorded["decision"],
            &recorded["actor"],
            &recorded["previous"]
        ),
        (
            &json!("deals@shop.example.com"),
            &json!("keep"),
            &json!("user-7"),
            &Value::Null
        )
    );
    assert!(recorded["decided_at"].as_str().is_some());
    let refused = first
        .client
        .put(first.url("/v1/senders/deals@shop.example.com/decision"))
        .header("x-api-key", KEY)
        .json(&json!({"decision": "unsubscribed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        400,
        "unsubscribed is not the owner's to set"
    );
    drop(first);

    let second = spawn(&[("DATA_DIR", &data_dir)]);
    let view: Value = second
        .client
        .get(second.url("/v1/senders/deals@shop.example.com"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["address"], "deals@shop.example.com");
    assert_eq!(view["count"], 40);
    assert_eq!(view["decision"]["decision"], "keep");
    assert_eq!(view["decision"]["actor"], "user-7");
    assert_eq!(view["compliance"], json!([]));
    let candidates: Value = second
        .client
        .get(second.url("/v1/unsubscribe/candidates"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        candidates["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["sender"]["address"] != "deals@shop.example.com"),
        "a kept sender is never a candidate, also after a restart"
    );
}

#[tokio::test]
async fn the_compliance_report_watches_what_the_api_unsubscribed() {
    let server = spawn(&[("UNSUBSCRIBE_GRACE_H", "24")]);
    let outcome: Value = server
        .client
        .post(server.url("/v1/unsubscribe"))
        .header("x-api-key", KEY)
        .json(&json!({"sender": "lug@lists.example.org"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(outcome["result"], "unsubscribed");
    let report: Value = server
        .client
        .get(server.url("/v1/unsubscribe/compliance"))
        .bearer_auth(token("unsubscribe:read"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["grace_hours"], 24);
    assert_eq!(report["enforcement"], "report");
    let entry = &report["entries"][0];
    assert_eq!(entry["sender"], "lug@lists.example.org");
    assert_eq!(entry["method"], "mailto");
    // The sample mail is older than the unsubscribe (made now, by the system clock).
    assert_eq!(entry["status"], "pending");
    assert_eq!(entry["violations"], 0);
    assert_eq!(report["summary"]["pending"], 1);
    let view: Value = server
        .client
        .get(server.url("/v1/senders/lug@lists.example.org"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["decision"]["decision"], "unsubscribed");
    assert_eq!(view["compliance"][0]["status"], "pending");
}

/// A quietbox-api on a fake Google whose `refresh-1` token is granted `scopes`.
async fn gmail_server(scopes: &[&str]) -> (quietbox_testkit::FakeGoogle, crate::harness::App) {
    use quietbox_testkit::{FakeGoogle, FakeMessage};
    let fake = FakeGoogle::start("owner@example.com").await;
    fake.grant_scopes("refresh-1", scopes);
    fake.add_messages(vec![FakeMessage::new(
        "g1",
        "\"Gadget News\" <news@gadgets.example.com>",
        1_795_000_000_000,
        &[("List-Id", "<news.gadgets.example.com>")],
    )]);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token.json");
    std::fs::write(&token, json!({"refresh_token": "refresh-1", "token_uri": format!("{}/token", fake.base), "client_id": "c"}).to_string()).unwrap();
    let token = token.display().to_string();
    let server = spawn_in(
        dir,
        &[
            ("MAIL_PROVIDER", "gmail"),
            ("GOOGLE_TOKEN_FILE", &token),
            ("GOOGLE_API_BASE_URL", &fake.base),
        ],
    );
    (fake, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_gmail_auto_archive_makes_one_filter_and_a_token_without_its_scope_gets_a_named_502() {
    use quietbox_testkit::scopes;
    let (fake, server) = gmail_server(scopes::ALL).await;
    let decide = |server: &crate::harness::App| {
        server
            .client
            .put(server.url("/v1/senders/news@gadgets.example.com/decision"))
            .header("x-api-key", KEY)
            .json(&json!({"decision": "auto_archive"}))
            .send()
    };
    let response = decide(&server).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["decision"], "auto_archive");
    assert_eq!(body["actor"], "api_key");
    assert_eq!(body["archive"]["applied"], true);
    assert_eq!(body["archive"]["message_ids"], json!(["g1"]));
    assert_eq!(fake.filters().len(), 1);
    assert!(!fake.labels("g1").unwrap().contains(&"INBOX".to_owned()));
    assert_eq!(decide(&server).await.unwrap().status(), 200);
    assert_eq!(fake.filters().len(), 1, "deciding again finds the filter");

    let (fake, server) = gmail_server(scopes::DEFAULT).await;
    let response = decide(&server).await.unwrap();
    assert_eq!(response.status(), 502);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "upstream_scope_missing");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("https://www.googleapis.com/auth/gmail.settings.basic")
            && detail.contains("login --archive"),
        "{detail}"
    );
    assert!(fake.filters().is_empty());
}
