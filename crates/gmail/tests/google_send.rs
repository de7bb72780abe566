//! Issue 22 items 1, 2 and 5 against testkit's fake Google: at-most-once sends, `Retry-After`
//! (both forms, and the cap), granted scopes, and the token endpoint's refusals.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quietbox_core::ports::{MailProvider, OutgoingMail, ProviderError};
use quietbox_core::store::SubscriptionKey;
use quietbox_gmail::google::{
    ARCHIVE_SCOPES, DEFAULT_SCOPES, GMAIL_SETTINGS_BASIC, GmailProvider, GoogleApi, QuotaBucket,
    RetryPolicy, TokenManager,
};
use quietbox_testkit::{FakeGoogle, Faults};

struct Rig {
    fake: FakeGoogle,
    api: GoogleApi,
    gmail: GmailProvider,
    tokens: Arc<TokenManager>,
    token_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// A client of a fresh fake; `scopes`, when given, are recorded in `token.json` as granted.
async fn rig(scopes: Option<&[&str]>) -> Rig {
    let fake = FakeGoogle::start("owner@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("token.json");
    let mut file = serde_json::json!({"token": "stale", "refresh_token": "refresh-1",
        "token_uri": format!("{}/token", fake.base), "client_id": "cid", "client_secret": "csecret",
        "expiry": "2020-01-01T00:00:00Z"});
    if let Some(scopes) = scopes {
        file["scopes"] = serde_json::json!(scopes);
    }
    std::fs::write(&token_path, file.to_string()).unwrap();
    let http = reqwest::Client::new();
    let tokens = Arc::new(TokenManager::load(&token_path, http.clone()).unwrap());
    let retry = RetryPolicy {
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(500),
        attempts: 6,
        timeout: Duration::from_secs(5),
    };
    let api = GoogleApi::new(
        http,
        &fake.base,
        tokens.clone(),
        Arc::new(QuotaBucket::new(1_000_000)),
        retry,
    );
    Rig {
        gmail: GmailProvider::new(api.clone(), "owner@example.com", 4),
        api,
        fake,
        tokens,
        token_path,
        _dir: dir,
    }
}

/// A mail as core builds it (lettre), which carries no `Message-ID` of its own.
fn mail() -> OutgoingMail {
    let message = lettre::Message::builder()
        .from("owner@example.com".parse().unwrap())
        .to("unsubscribe@news.example.com".parse().unwrap())
        .subject("unsubscribe")
        .body("unsubscribe".to_owned())
        .unwrap();
    OutgoingMail {
        from: "owner@example.com".into(),
        to: vec!["unsubscribe@news.example.com".into()],
        raw: message.formatted(),
    }
}

fn message_id_of(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    text.lines()
        .find_map(|l| l.strip_prefix("Message-ID: ").map(str::to_owned))
}

#[tokio::test]
async fn a_send_whose_connection_drops_after_google_stored_it_is_found_by_its_message_id_and_not_repeated()
 {
    let rig = rig(None).await;
    rig.fake.drop_after_send(1);
    let sent = rig.gmail.send(mail()).await.unwrap();
    let stored = rig.fake.sent();
    assert_eq!(stored.len(), 1, "sent exactly once");
    assert_eq!(sent.id, "sent-1", "the id found by the lookup");
    assert_eq!(rig.fake.calls("messages.send"), 1);
    assert_eq!(rig.fake.calls("messages.list"), 1, "one lookup");
    let id = message_id_of(&stored[0]).expect("the sent message carries a Message-ID");
    assert!(
        id.starts_with("<quietbox.") && id.ends_with("@example.com>"),
        "{id}"
    );
}

#[tokio::test]
async fn a_send_dropped_before_google_stored_it_is_sent_once_more_after_the_lookup_finds_nothing() {
    let rig = rig(None).await;
    rig.fake.set_faults(Faults {
        drop_next: 1,
        ..Faults::default()
    });
    let sent = rig.gmail.send(mail()).await.unwrap();
    assert_eq!(rig.fake.sent().len(), 1);
    assert_eq!(sent.id, "sent-1");
    assert_eq!(rig.fake.calls("messages.send"), 2, "one resend");
    assert_eq!(rig.fake.calls("messages.list"), 1, "after one lookup");
}

#[tokio::test]
async fn a_send_answered_5xx_is_looked_up_before_it_is_sent_again() {
    let rig = rig(None).await;
    rig.fake.set_faults(Faults {
        fail_next: 1,
        ..Faults::default()
    });
    rig.gmail.send(mail()).await.unwrap();
    assert_eq!(rig.fake.sent().len(), 1);
    assert_eq!(rig.fake.calls("messages.send"), 2);
    assert_eq!(rig.fake.calls("messages.list"), 1);
}

#[tokio::test]
async fn a_send_that_keeps_failing_ambiguously_stops_and_says_it_is_not_in_sent() {
    let rig = rig(None).await;
    rig.fake.set_faults(Faults {
        drop_next: 100,
        ..Faults::default()
    });
    let err = rig.gmail.send(mail()).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("not sent again"), "{err}");
    // The lookup after the first send was dropped too: without its answer, no resend.
    assert_eq!(
        rig.fake.calls("messages.send"),
        1,
        "never resent without a lookup"
    );
}

#[tokio::test]
async fn a_retry_after_within_the_cap_is_obeyed_in_seconds() {
    let rig = rig(None).await;
    rig.fake.fail_with_retry_after(1, 429, "1");
    let start = Instant::now();
    GmailProvider::connect(rig.api.clone(), 1).await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_retry_after_in_the_http_date_form_is_obeyed() {
    let rig = rig(None).await;
    let at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    rig.fake.fail_with_retry_after(1, 503, &date);
    let start = Instant::now();
    GmailProvider::connect(rig.api.clone(), 1).await.unwrap();
    // The date has whole seconds: the wait is between 2 and 3 s.
    assert!(
        start.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_fails_at_once_with_googles_wait() {
    let rig = rig(None).await;
    let api = rig.api.clone().with_retry_after_max(Duration::from_secs(2));
    rig.fake.fail_with_retry_after(1, 429, "3600");
    let start = Instant::now();
    let err = GmailProvider::connect(api.clone(), 1).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(3600))
        }
    );
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert!(err.to_string().contains("3600"), "{err}");
    // The date form too.
    let at = chrono::Utc::now() + chrono::Duration::seconds(600);
    rig.fake
        .fail_with_retry_after(1, 503, &at.format("%a, %d %b %Y %H:%M:%S GMT").to_string());
    match GmailProvider::connect(api, 1).await.unwrap_err() {
        ProviderError::RateLimited {
            retry_after: Some(wait),
        } => assert!(wait > Duration::from_secs(590), "{wait:?}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_401_right_after_a_successful_refresh_is_an_auth_error_that_says_what_to_do() {
    let rig = rig(None).await;
    rig.fake.reject_access_tokens(true);
    let err = GmailProvider::connect(rig.api.clone(), 1)
        .await
        .unwrap_err();
    let ProviderError::AuthExpired(text) = &err else {
        panic!("{err:?}");
    };
    assert!(text.contains("after a successful refresh"), "{text}");
    assert!(
        text.contains("Google Cloud console") && text.contains("login"),
        "{text}"
    );
    // One refresh for the expired token, one after the 401: then the error, not a loop.
    assert_eq!(rig.fake.calls("token"), 2);
}

#[tokio::test]
async fn a_token_refusal_other_than_invalid_grant_names_googles_error_and_a_remedy() {
    let rig = rig(None).await;
    rig.fake.refuse_tokens(Some((
        401,
        serde_json::json!({"error": "invalid_client", "error_description": "The OAuth client was not found."}),
    )));
    let err = rig.tokens.access_token().await.unwrap_err();
    let ProviderError::AuthExpired(text) = &err else {
        panic!("{err:?}");
    };
    assert!(text.contains("invalid_client"), "{text}");
    assert!(text.contains("The OAuth client was not found."), "{text}");
    assert!(
        text.contains("client secret file") && text.contains("login"),
        "{text}"
    );
}

#[tokio::test]
async fn a_refresh_records_the_scopes_google_granted() {
    let rig = rig(Some(&[DEFAULT_SCOPES, ARCHIVE_SCOPES].concat())).await;
    rig.fake.grant_scopes("refresh-1", DEFAULT_SCOPES);
    rig.tokens.access_token().await.unwrap();
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&rig.token_path).unwrap()).unwrap();
    let mut scopes: Vec<&str> = written["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    scopes.sort_unstable();
    let mut expected = DEFAULT_SCOPES.to_vec();
    expected.sort_unstable();
    assert_eq!(scopes, expected);
    assert_eq!(rig.api.missing_archive_scopes().await, ARCHIVE_SCOPES);
}

#[tokio::test]
async fn archiving_with_a_token_that_was_not_granted_its_scopes_names_the_missing_one_before_calling_google()
 {
    let narrow = rig(Some(DEFAULT_SCOPES)).await;
    // Google grants the same on refresh (its answer's `scope` replaces what the file records).
    narrow.fake.grant_scopes("refresh-1", DEFAULT_SCOPES);
    assert_eq!(narrow.api.missing_archive_scopes().await, ARCHIVE_SCOPES);
    let key = SubscriptionKey {
        sender: "news@example.com".into(),
        list_id: None,
    };
    let err = narrow
        .gmail
        .auto_archive(&key, &["m1".to_owned()])
        .await
        .unwrap_err();
    match &err {
        ProviderError::MissingScope { scope, remedy, .. } => {
            assert_eq!(scope, GMAIL_SETTINGS_BASIC);
            assert!(remedy.contains("login --archive"), "{remedy}");
        }
        other => panic!("{other:?}"),
    }
    // Refused before the call: Google is not asked (and does not answer a 403).
    assert_eq!(narrow.fake.calls("settings.filters.create"), 0);
    assert!(narrow.fake.filters().is_empty());
    // A token that records the archive scopes archives.
    let granted = rig(Some(&[DEFAULT_SCOPES, ARCHIVE_SCOPES].concat())).await;
    assert!(granted.api.missing_archive_scopes().await.is_empty());
    granted.gmail.auto_archive(&key, &[]).await.unwrap();
}

#[tokio::test]
async fn login_stores_the_scopes_google_granted_not_the_ones_asked() {
    let fake = FakeGoogle::start("owner@example.com").await;
    fake.grant_scopes("refresh-from-code", DEFAULT_SCOPES);
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
    let browser = tokio::spawn(async move {
        let url = url::Url::parse(&url_rx.await.unwrap()).unwrap();
        let param = |k: &str| {
            url.query_pairs()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.into_owned())
                .unwrap()
        };
        browser_fake.register_code("code-1", &param("code_challenge"));
        let redirect = format!(
            "{}?code=code-1&state={}",
            param("redirect_uri"),
            param("state")
        );
        reqwest::get(redirect).await.unwrap().text().await.unwrap()
    });
    let asked = quietbox_gmail::google::login_scopes(true);
    quietbox_gmail::google::login(
        &secret,
        &token_file,
        &asked,
        Duration::from_secs(10),
        move |url| {
            url_tx.send(url.to_owned()).unwrap();
        },
    )
    .await
    .unwrap();
    browser.await.unwrap();
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&token_file).unwrap()).unwrap();
    let mut scopes: Vec<&str> = written["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    scopes.sort_unstable();
    let mut expected = DEFAULT_SCOPES.to_vec();
    expected.sort_unstable();
    assert_eq!(
        scopes, expected,
        "what Google granted, not the archive scopes asked"
    );
}

#[tokio::test]
async fn a_send_that_cannot_connect_is_retried_as_nothing_reached_google() {
    let rig = rig(None).await;
    // Take a fresh token first, then point the client at a port nobody listens on.
    rig.tokens.access_token().await.unwrap();
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let api = GoogleApi::new(
        reqwest::Client::new(),
        &dead,
        rig.tokens.clone(),
        Arc::new(QuotaBucket::new(1_000_000)),
        RetryPolicy {
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            attempts: 3,
            timeout: Duration::from_secs(2),
        },
    );
    let err = GmailProvider::new(api, "owner@example.com", 1)
        .send(mail())
        .await
        .unwrap_err();
    let text = err.to_string();
    // Retried like any call (no ambiguity, so no lookup), then a plain "unavailable".
    assert!(text.contains("gave up after 3 attempts"), "{text}");
    assert!(!text.contains("Message-ID"), "{text}");
}
