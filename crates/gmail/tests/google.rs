//! The Google provider against testkit's fake Google (never a mock of the client itself).

use std::sync::Arc;
use std::time::Duration;

use quietbox_core::ports::{
    CalendarProvider, MailProvider, NoProgress, OutgoingMail, ProviderError, ScanRequest,
};
use quietbox_gmail::google::{
    GmailProvider, GoogleApi, GoogleCalendar, QuotaBucket, RetryPolicy, TokenManager,
};
use quietbox_testkit::{FakeGoogle, FakeMessage, Faults};

struct Rig {
    fake: FakeGoogle,
    gmail: GmailProvider,
    calendar: GoogleCalendar,
    tokens: Arc<TokenManager>,
    token_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

const T0: i64 = 1_795_000_000_000;

fn messages(range: std::ops::Range<usize>) -> Vec<FakeMessage> {
    range
        .map(|i| {
            FakeMessage::new(
                &format!("m{i:05}"),
                &format!("\"Sender {}\" <s{}@news.example.com>", i % 7, i % 7),
                T0 + i as i64 * 1000,
                &[
                    ("List-Unsubscribe", "<https://news.example.com/u>"),
                    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                    ("X-Not-Requested", "secret"),
                ],
            )
        })
        .collect()
}

async fn rig(quota: u32) -> Rig {
    let fake = FakeGoogle::start("owner@example.com").await;
    fake.set_quota(quota);
    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("token.json");
    std::fs::write(
        &token_path,
        serde_json::json!({"token": "stale", "refresh_token": "refresh-1", "token_uri": format!("{}/token", fake.base),
            "client_id": "cid", "client_secret": "csecret", "expiry": "2020-01-01T00:00:00Z", "universe_domain": "googleapis.com"})
        .to_string(),
    )
    .unwrap();
    let http = reqwest::Client::new();
    let tokens = Arc::new(TokenManager::load(&token_path, http.clone()).unwrap());
    let retry = RetryPolicy {
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(500),
        attempts: 40,
        timeout: Duration::from_secs(2),
    };
    let api = GoogleApi::new(
        http,
        &fake.base,
        tokens.clone(),
        Arc::new(QuotaBucket::new(quota)),
        retry,
    );
    Rig {
        gmail: GmailProvider::new(api.clone(), "owner@example.com", 10),
        calendar: GoogleCalendar::new(api),
        fake,
        tokens,
        token_path,
        _dir: dir,
    }
}

#[tokio::test]
async fn a_full_scan_pages_through_every_message_with_only_the_requested_headers() {
    let rig = rig(1_000_000).await;
    rig.fake.add_messages(messages(0..1100));
    let batch = rig
        .gmail
        .scan(&ScanRequest::default(), &NoProgress)
        .await
        .unwrap();
    assert!(batch.full);
    assert_eq!(batch.messages.len(), 1100);
    assert_eq!(
        rig.fake.calls("messages.list"),
        3,
        "1100 ids in pages of 500"
    );
    let m = batch.messages.iter().find(|m| m.id == "m00003").unwrap();
    assert_eq!(m.from, "\"Sender 3\" <s3@news.example.com>");
    assert_eq!(
        m.list_unsubscribe_post.as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    assert!(m.unread && m.labels.contains(&"INBOX".to_owned()));
    assert_eq!(m.date.unwrap().timestamp_millis(), T0 + 3000);
    assert_eq!(batch.cursor, Some(rig.fake.history_id().to_string()));
}

#[tokio::test]
async fn an_incremental_scan_fetches_only_the_changes() {
    let rig = rig(1_000_000).await;
    rig.fake.add_messages(messages(0..200));
    let first = rig
        .gmail
        .scan(&ScanRequest::default(), &NoProgress)
        .await
        .unwrap();
    let before = rig.fake.api_calls();
    rig.fake.add_messages(messages(200..250));
    rig.fake.delete_messages(&["m00001", "m00002", "m00210"]);
    let request = ScanRequest {
        cursor: first.cursor.clone(),
        ..Default::default()
    };
    let second = rig.gmail.scan(&request, &NoProgress).await.unwrap();
    let calls = rig.fake.api_calls() - before;
    assert!(!second.full);
    assert_eq!(
        second.messages.len(),
        49,
        "50 added, one of them deleted again"
    );
    // An id added and deleted between scans is reported removed: harmless, and the client cannot
    // know whether an earlier scan saw it.
    assert_eq!(
        second.removed,
        vec![
            "m00001".to_owned(),
            "m00002".to_owned(),
            "m00210".to_owned()
        ]
    );
    assert!(
        calls <= 60,
        "an incremental rescan after 50 new messages made {calls} API calls"
    );
    eprintln!("incremental rescan after 50 new messages: {calls} API calls");
}

#[tokio::test]
async fn a_label_change_since_the_cursor_refetches_the_message() {
    use quietbox_core::store::SubscriptionKey;
    let rig = rig(1_000_000).await;
    rig.fake.add_messages(messages(0..10));
    let first = rig
        .gmail
        .scan(&ScanRequest::default(), &NoProgress)
        .await
        .unwrap();
    let key = SubscriptionKey {
        sender: "s3@news.example.com".into(),
        list_id: None,
    };
    let outcome = rig
        .gmail
        .auto_archive(&key, &["m00003".to_owned()])
        .await
        .unwrap();
    assert!(outcome.applied && outcome.filter_created);
    let request = ScanRequest {
        cursor: first.cursor.clone(),
        ..Default::default()
    };
    let second = rig.gmail.scan(&request, &NoProgress).await.unwrap();
    assert!(!second.full);
    let ids: Vec<&str> = second.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["m00003"], "only the relabelled message");
    assert!(!second.messages[0].labels.contains(&"INBOX".to_owned()));
    assert_eq!(rig.gmail.stop_auto_archive(&key).await.unwrap(), 1);
    assert_eq!(rig.gmail.stop_auto_archive(&key).await.unwrap(), 0);
}

#[tokio::test]
async fn an_expired_history_id_falls_back_to_a_full_scan() {
    let rig = rig(1_000_000).await;
    rig.fake.add_messages(messages(0..30));
    let first = rig
        .gmail
        .scan(&ScanRequest::default(), &NoProgress)
        .await
        .unwrap();
    rig.fake.add_messages(messages(30..35));
    rig.fake.expire_history();
    let second = rig
        .gmail
        .scan(
            &ScanRequest {
                cursor: first.cursor,
                ..Default::default()
            },
            &NoProgress,
        )
        .await
        .unwrap();
    assert!(second.full);
    assert_eq!(second.messages.len(), 35);
}

#[tokio::test]
async fn an_access_token_expiring_mid_scan_is_refreshed_once_and_the_scan_completes() {
    let rig = rig(1_000_000).await;
    rig.fake.add_messages(messages(0..300));
    rig.tokens.access_token().await.unwrap();
    assert_eq!(rig.fake.calls("token"), 1);
    rig.fake.set_faults(Faults {
        latency: Duration::from_millis(2),
        ..Faults::default()
    });
    let fake = rig.fake.clone();
    let expirer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(40)).await;
        fake.expire_access_tokens();
    });
    let batch = rig
        .gmail
        .scan(&ScanRequest::default(), &NoProgress)
        .await
        .unwrap();
    expirer.await.unwrap();
    assert_eq!(batch.messages.len(), 300);
    assert_eq!(
        rig.fake.calls("token"),
        2,
        "concurrent 401s share one refresh"
    );
}

#[tokio::test]
async fn concurrent_callers_with_an_expired_token_cause_one_refresh_and_it_is_persisted() {
    let rig = rig(1_000_000).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let tokens = rig.tokens.clone();
        tasks.push(tokio::spawn(
            async move { tokens.access_token().await.unwrap() },
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for task in tasks {
        seen.insert(task.await.unwrap());
    }
    assert_eq!(seen.len(), 1);
    assert_eq!(rig.fake.calls("token"), 1);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&rig.token_path).unwrap()).unwrap();
    assert_eq!(written["token"], *seen.iter().next().unwrap());
    assert_eq!(
        written["universe_domain"], "googleapis.com",
        "unknown fields survive the rewrite"
    );
    assert!(written["expiry"].as_str().unwrap() > "2026");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&rig.token_path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(
        !format!("{:?}", rig.tokens).contains(seen.iter().next().unwrap().as_str()),
        "Debug hides the token"
    );
}

#[tokio::test]
async fn a_revoked_refresh_token_tells_the_operator_to_log_in_again() {
    let rig = rig(1_000_000).await;
    rig.fake.add_messages(messages(0..3));
    rig.fake.revoke_refresh_token("refresh-1");
    let error = rig
        .gmail
        .scan(&ScanRequest::default(), &NoProgress)
        .await
        .unwrap_err();
    let ProviderError::AuthExpired(message) = &error else {
        panic!("{error:?}")
    };
    assert!(message.contains("login"), "{message}");
}

#[tokio::test]
async fn a_429_storm_slows_the_scan_down_but_loses_no_message() {
    // The client believes it has 250 units/s; the fake allows 100: many 429s.
    let rig = rig(250).await;
    rig.fake.set_quota(100);
    rig.fake.add_messages(messages(0..50));
    let batch = rig
        .gmail
        .scan(&ScanRequest::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(batch.messages.len(), 50);
    assert!(
        rig.fake.calls("messages.get") > 50,
        "some calls were refused and retried"
    );
}

#[tokio::test]
async fn server_errors_and_dropped_connections_are_retried() {
    let rig = rig(1_000_000).await;
    rig.fake.add_messages(messages(0..20));
    rig.tokens.access_token().await.unwrap();
    rig.fake.set_faults(Faults {
        fail_next: 6,
        drop_next: 2,
        ..Faults::default()
    });
    let batch = rig
        .gmail
        .scan(&ScanRequest::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(batch.messages.len(), 20);
}

#[tokio::test]
async fn sending_posts_the_raw_message_base64url_encoded() {
    let rig = rig(1_000_000).await;
    // With its own Message-ID it is sent byte for byte (without, one is added: google_send.rs).
    let raw = b"Message-ID: <u1@example.com>\r\nFrom: owner@example.com\r\nTo: leave@list.example.com\r\nSubject: unsubscribe\r\n\r\nunsubscribe\r\n".to_vec();
    let sent = rig
        .gmail
        .send(OutgoingMail {
            from: "owner@example.com".into(),
            to: vec!["leave@list.example.com".into()],
            raw: raw.clone(),
        })
        .await
        .unwrap();
    assert_eq!(sent.id, "sent-1");
    assert_eq!(rig.fake.sent(), vec![raw]);
}

#[tokio::test]
async fn free_busy_becomes_busy_intervals() {
    let rig = rig(1_000_000).await;
    rig.fake.set_busy(&[
        ("2026-11-25T09:00:00Z", "2026-11-25T10:00:00Z"),
        ("2026-11-25T13:30:00+01:00", "2026-11-25T14:00:00+01:00"),
    ]);
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-25T00:00:00Z")
        .unwrap()
        .to_utc();
    let busy = rig
        .calendar
        .busy(start, start + chrono::Duration::days(1), "Europe/Paris")
        .await
        .unwrap();
    assert_eq!(busy.len(), 2);
    assert_eq!(busy[1].start.to_rfc3339(), "2026-11-25T12:30:00+00:00");
}

#[tokio::test]
async fn login_exchanges_a_pkce_code_from_the_loopback_redirect_and_writes_token_json() {
    let fake = FakeGoogle::start("owner@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("client_secret.json");
    std::fs::write(
        &secret,
        serde_json::json!({"installed": {"client_id": "cid", "client_secret": "cs", "auth_uri": format!("{}/auth", fake.base),
            "token_uri": format!("{}/token", fake.base), "redirect_uris": ["http://127.0.0.1"]}})
        .to_string(),
    )
    .unwrap();
    let token_file = dir.path().join("token.json");
    let (url_tx, url_rx) = tokio::sync::oneshot::channel::<String>();
    let browser_fake = fake.clone();
    // The "browser": reads the consent URL, lets the fake issue a code bound to the PKCE
    // challenge, and follows the redirect.
    let browser = tokio::spawn(async move {
        let url = url::Url::parse(&url_rx.await.unwrap()).unwrap();
        let param = |k: &str| {
            url.query_pairs()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.into_owned())
                .unwrap()
        };
        assert_eq!(param("code_challenge_method"), "S256");
        assert_eq!(param("access_type"), "offline");
        browser_fake.register_code("code-1", &param("code_challenge"));
        let redirect = format!(
            "{}?code=code-1&state={}",
            param("redirect_uri"),
            param("state")
        );
        reqwest::get(redirect).await.unwrap().text().await.unwrap()
    });
    quietbox_gmail::google::login(
        &secret,
        &token_file,
        quietbox_gmail::google::DEFAULT_SCOPES,
        Duration::from_secs(10),
        move |url| {
            url_tx.send(url.to_owned()).unwrap();
        },
    )
    .await
    .unwrap();
    assert!(browser.await.unwrap().contains("authorized"));
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&token_file).unwrap()).unwrap();
    assert_eq!(written["refresh_token"], "refresh-from-code");
    assert!(written["token"].as_str().unwrap().starts_with("access-"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[tokio::test]
async fn a_scan_after_a_restart_resumes_from_the_stored_checkpoint() {
    use quietbox_core::Quietbox;
    use quietbox_core::ports::SystemClock;
    let rig = rig(1_000_000).await;
    rig.fake.add_messages(messages(0..100));
    let state_dir = tempfile::tempdir().unwrap();
    let build = |gmail: GmailProvider, calendar: GoogleCalendar| {
        Quietbox::new(
            Arc::new(gmail),
            Arc::new(calendar),
            Arc::new(quietbox_state::FileStore::open(state_dir.path()).unwrap()),
            Arc::new(
                quietbox_gmail::outbound::SsrfGuardedClient::new(
                    quietbox_gmail::outbound::OutboundPolicy::public_only(),
                )
                .unwrap(),
            ),
            Arc::new(SystemClock),
            Default::default(),
        )
    };
    let first = build(rig.gmail.clone(), rig.calendar.clone());
    let report = first.scan(Default::default(), &NoProgress).await.unwrap();
    assert!(!report.incremental && report.total == 100);
    drop(first); // the process "crashes"; only the state directory survives
    rig.fake.add_messages(messages(100..110));
    let before = rig.fake.calls("messages.get");
    let restarted = build(rig.gmail.clone(), rig.calendar.clone());
    let report = restarted
        .scan(Default::default(), &NoProgress)
        .await
        .unwrap();
    assert!(report.incremental);
    assert_eq!(report.total, 110);
    assert_eq!(
        rig.fake.calls("messages.get") - before,
        10,
        "only the new messages were fetched"
    );
}

#[tokio::test]
async fn a_strangers_from_with_esc_from_gmail_yields_no_raw_escape_in_a_sender() {
    let rig = rig(1_000_000).await;
    rig.fake.add_messages(vec![
        FakeMessage::new(
            "esc1",
            "\"Mega\u{1b}[2JDeals\r\n\" <deals@evil.example>",
            T0,
            &[],
        ),
        FakeMessage::new("esc2", "<news@evil.example\u{1b}[31m>", T0 + 1, &[]),
    ]);
    let batch = rig
        .gmail
        .scan(&ScanRequest::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(batch.messages.len(), 2);
    let senders = quietbox_core::senders::aggregate(&batch.messages);
    // The name's ESC is escaped (the sender still counts); an address holding ESC is none.
    assert_eq!(senders.len(), 1, "{senders:?}");
    assert_eq!(senders[0].address, "deals@evil.example");
    assert_eq!(senders[0].name.as_deref(), Some("Mega\u{fffd}[2JDeals"));
}
