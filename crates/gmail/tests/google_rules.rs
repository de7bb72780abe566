//! Issue 22 items 3, 4, 6 and 7: freeBusy per calendar, incremental scans that report what a
//! full scan would, decoded non-ASCII headers, and the fake Google following Google's rules
//! (each rule checked over raw HTTP, so the test fails when the fake loosens it).

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use quietbox_core::ports::{CalendarProvider, MailProvider, NoProgress, ScanRequest};
use quietbox_core::store::SubscriptionKey;
use quietbox_gmail::google::{
    GmailProvider, GoogleApi, GoogleCalendar, QuotaBucket, RetryPolicy, TokenManager,
};
use quietbox_testkit::{FakeGoogle, FakeMessage, Faults};
use serde_json::{Value, json};

const T0: i64 = 1_795_000_000_000;

struct Rig {
    fake: FakeGoogle,
    api: GoogleApi,
    gmail: GmailProvider,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    let fake = FakeGoogle::start("owner@example.com").await;
    fake.set_quota(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("token.json");
    std::fs::write(
        &token_path,
        json!({"token": "stale", "refresh_token": "refresh-1", "token_uri": format!("{}/token", fake.base),
            "client_id": "cid", "client_secret": "csecret", "expiry": "2020-01-01T00:00:00Z"})
        .to_string(),
    )
    .unwrap();
    let http = reqwest::Client::new();
    let tokens = Arc::new(TokenManager::load(&token_path, http.clone()).unwrap());
    let retry = RetryPolicy {
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(200),
        attempts: 6,
        timeout: Duration::from_secs(2),
    };
    let api = GoogleApi::new(
        http,
        &fake.base,
        tokens,
        Arc::new(QuotaBucket::new(1_000_000)),
        retry,
    );
    Rig {
        gmail: GmailProvider::new(api.clone(), "owner@example.com", 8),
        api,
        fake,
        _dir: dir,
    }
}

fn message(id: &str, from: &str, ms: i64) -> FakeMessage {
    FakeMessage::new(id, from, ms, &[])
}

fn with_labels(mut m: FakeMessage, labels: &[&str]) -> FakeMessage {
    m.labels = labels.iter().map(|l| l.to_string()).collect();
    m
}

fn ids(batch: &quietbox_core::ports::ScanBatch) -> Vec<String> {
    let mut ids: Vec<String> = batch.messages.iter().map(|m| m.id.clone()).collect();
    ids.sort();
    ids
}

fn window() -> (chrono::DateTime<Utc>, chrono::DateTime<Utc>) {
    (
        Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 3, 3, 0, 0, 0).unwrap(),
    )
}

// ---- item 3: freeBusy ----

#[tokio::test]
async fn free_busy_asks_every_configured_calendar_and_merges_their_busy_times() {
    let rig = rig().await;
    rig.fake
        .set_busy(&[("2026-03-02T10:00:00Z", "2026-03-02T11:00:00Z")]);
    rig.fake.set_calendar_busy(
        "team@example.com",
        &[("2026-03-02T09:00:00Z", "2026-03-02T09:30:00Z")],
    );
    let calendar = GoogleCalendar::with_calendars(
        rig.api.clone(),
        vec!["primary".into(), "team@example.com".into()],
    );
    let (start, end) = window();
    let busy = calendar.busy(start, end, "UTC").await.unwrap();
    assert_eq!(busy.len(), 2, "{busy:?}");
    assert_eq!(
        busy[0].start,
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
    );
}

#[tokio::test]
async fn a_calendar_google_cannot_find_is_an_error_naming_it_and_the_reason_never_free() {
    let rig = rig().await;
    let calendar = GoogleCalendar::with_calendars(
        rig.api.clone(),
        vec!["primary".into(), "gone@example.com".into()],
    );
    let (start, end) = window();
    let error = calendar
        .busy(start, end, "UTC")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("gone@example.com") && error.contains("notFound"),
        "{error}"
    );
}

#[tokio::test]
async fn a_busy_entry_that_cannot_be_read_is_an_error_not_free_time() {
    let rig = rig().await;
    rig.fake.set_busy(&[("10 o'clock", "2026-03-02T11:00:00Z")]);
    let calendar = GoogleCalendar::new(rig.api.clone());
    let (start, end) = window();
    let error = calendar
        .busy(start, end, "UTC")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("primary") && error.contains("cannot be read"),
        "{error}"
    );
}

// ---- item 4: incremental scans report what full scans report ----

#[tokio::test]
async fn an_incremental_scan_applies_the_query_and_since_of_the_full_scan() {
    let rig = rig().await;
    rig.fake.add_messages(vec![
        message("a1", "alice@news.example.com", T0),
        message("b1", "bob@other.example.com", T0 + 1000),
    ]);
    let since = Utc.timestamp_millis_opt(T0 - 60_000).unwrap();
    let request = ScanRequest {
        query: Some("from:alice@news.example.com".into()),
        since: Some(since),
        ..Default::default()
    };
    let full = rig.gmail.scan(&request, &NoProgress).await.unwrap();
    assert_eq!(ids(&full), vec!["a1"]);
    rig.fake.add_messages(vec![
        message("a2", "alice@news.example.com", T0 + 5000),
        // Matches the query but is older than `since` (imported mail keeps its date).
        message("a0", "alice@news.example.com", T0 - 3_600_000),
        message("b2", "bob@other.example.com", T0 + 6000),
    ]);
    let incremental = rig
        .gmail
        .scan(
            &ScanRequest {
                cursor: full.cursor.clone(),
                ..request.clone()
            },
            &NoProgress,
        )
        .await
        .unwrap();
    assert!(!incremental.full);
    assert_eq!(ids(&incremental), vec!["a2"]);
    // The same as what a full scan with that request reports now, minus what it saw before.
    let again = rig.gmail.scan(&request, &NoProgress).await.unwrap();
    assert_eq!(ids(&again), vec!["a1", "a2"]);
}

#[tokio::test]
async fn incremental_and_full_scans_skip_spam_trash_and_drafts() {
    let rig = rig().await;
    rig.fake.add_messages(vec![
        message("keep", "alice@news.example.com", T0),
        with_labels(message("draft0", "owner@example.com", T0), &["DRAFT"]),
    ]);
    let full = rig
        .gmail
        .scan(&ScanRequest::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(ids(&full), vec!["keep"], "a full scan skips drafts");
    rig.fake.add_messages(vec![
        with_labels(
            message("spam", "x@spam.example.com", T0 + 1000),
            &["SPAM", "UNREAD"],
        ),
        with_labels(
            message("trash", "y@news.example.com", T0 + 2000),
            &["TRASH"],
        ),
        with_labels(message("draft", "owner@example.com", T0 + 3000), &["DRAFT"]),
        message("new", "alice@news.example.com", T0 + 4000),
    ]);
    rig.fake.relabel("keep", &["TRASH"], &["INBOX"]);
    let incremental = rig
        .gmail
        .scan(
            &ScanRequest {
                cursor: full.cursor.clone(),
                ..Default::default()
            },
            &NoProgress,
        )
        .await
        .unwrap();
    assert!(!incremental.full);
    assert_eq!(ids(&incremental), vec!["new"]);
    assert!(
        incremental.removed.contains(&"keep".to_owned()),
        "a message moved to the trash leaves the scan: {:?}",
        incremental.removed
    );
}

#[tokio::test]
async fn ids_repeated_across_list_pages_are_fetched_once() {
    let rig = rig().await;
    rig.fake.add_messages(
        (0..1100)
            .map(|i| message(&format!("m{i:05}"), "alice@news.example.com", T0 + i * 1000))
            .collect(),
    );
    rig.fake.set_list_overlap(true);
    let batch = rig
        .gmail
        .scan(&ScanRequest::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(batch.messages.len(), 1100);
    assert_eq!(rig.fake.calls("messages.get"), 1100, "each id fetched once");
}

#[tokio::test]
async fn ids_named_twice_are_archived_once() {
    let rig = rig().await;
    rig.fake
        .add_messages(vec![message("a1", "alice@news.example.com", T0)]);
    let key = SubscriptionKey {
        sender: "alice@news.example.com".into(),
        list_id: None,
    };
    let outcome = rig
        .gmail
        .auto_archive(&key, &["a1".into(), "a1".into()])
        .await
        .unwrap();
    assert_eq!(outcome.message_ids, vec!["a1".to_owned()]);
}

// ---- item 6: RFC 2047 encoded-words ----

#[tokio::test]
async fn encoded_words_in_from_and_subject_are_decoded_like_the_mbox_path() {
    let rig = rig().await;
    let mut m = message(
        "enc",
        "=?UTF-8?Q?Caf=C3=A9_M=C3=BCller?= <cafe@news.example.com>",
        T0,
    );
    m.headers
        .retain(|(name, _)| !name.eq_ignore_ascii_case("Subject"));
    m.headers
        .push(("Subject".into(), "=?UTF-8?B?w4lxdWlwZSDwn5qA?=".into()));
    rig.fake.add_messages(vec![m]);
    let batch = rig
        .gmail
        .scan(&ScanRequest::default(), &NoProgress)
        .await
        .unwrap();
    let got = &batch.messages[0];
    assert_eq!(got.from, "\"Café Müller\" <cafe@news.example.com>");
    assert_eq!(got.subject.as_deref(), Some("Équipe 🚀"));
}

// ---- item 7: the fake follows Google ----

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

fn first_error(body: &Value) -> &Value {
    &body["error"]["errors"][0]
}

#[tokio::test]
async fn the_fake_answers_the_per_user_limit_with_429_user_rate_limit_exceeded_and_retry_after() {
    let fake = FakeGoogle::start("owner@example.com").await;
    fake.set_quota(5);
    let token = fake.issue_access_token();
    let url = format!("{}/gmail/v1/users/me/messages", fake.base);
    let ok = client().get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let limited = client().get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().get("retry-after").is_some());
    let body: Value = limited.json().await.unwrap();
    assert_eq!(first_error(&body)["reason"], "userRateLimitExceeded");
    assert_eq!(first_error(&body)["domain"], "usageLimits");
    assert_eq!(body["error"]["code"], 429);
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert!(body["error"]["message"].is_string());
}

#[tokio::test]
async fn the_client_retries_gmails_403_rate_limit_exceeded() {
    let rig = rig().await;
    rig.fake
        .add_messages(vec![message("a1", "alice@news.example.com", T0)]);
    rig.fake.set_faults(Faults {
        rate_limit_403_next: 2,
        ..Faults::default()
    });
    // The 403 the fake sends is Google's, and the client retries it.
    let batch = rig
        .gmail
        .scan(&ScanRequest::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(ids(&batch), vec!["a1"]);
    let token = rig.fake.issue_access_token();
    rig.fake.set_faults(Faults {
        rate_limit_403_next: 1,
        ..Faults::default()
    });
    let answer = client()
        .get(format!("{}/gmail/v1/users/me/profile", rig.fake.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(first_error(&body)["reason"], "rateLimitExceeded");
    assert_eq!(first_error(&body)["domain"], "usageLimits");
}

#[tokio::test]
async fn the_fakes_401_names_the_authorization_header_and_challenges() {
    let fake = FakeGoogle::start("owner@example.com").await;
    let answer = client()
        .get(format!("{}/gmail/v1/users/me/profile", fake.base))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let challenge = answer
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("invalid_token"),
        "{challenge}"
    );
    let body: Value = answer.json().await.unwrap();
    assert_eq!(first_error(&body)["location"], "Authorization");
    assert_eq!(first_error(&body)["locationType"], "header");
    assert_eq!(first_error(&body)["reason"], "authError");
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
}

async fn free_busy(fake: &FakeGoogle, body: Value) -> (u16, Value) {
    let token = fake.issue_access_token();
    let answer = client()
        .post(format!("{}/calendar/v3/freeBusy", fake.base))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

#[tokio::test]
async fn the_fakes_free_busy_answers_each_requested_id_and_not_found_for_unknown_ones() {
    let fake = FakeGoogle::start("owner@example.com").await;
    fake.set_calendar_busy(
        "team@example.com",
        &[("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z")],
    );
    let (status, body) = free_busy(
        &fake,
        json!({"timeMin": "2026-03-02T00:00:00Z", "timeMax": "2026-03-03T00:00:00Z",
            "items": [{"id": "team@example.com"}, {"id": "nobody@example.com"}]}),
    )
    .await;
    assert_eq!(status, 200);
    let calendars = body["calendars"].as_object().unwrap();
    assert!(
        !calendars.contains_key("primary"),
        "only what was asked: {body}"
    );
    assert_eq!(
        calendars["team@example.com"]["busy"][0]["start"],
        "2026-03-02T09:00:00Z"
    );
    assert_eq!(
        calendars["nobody@example.com"]["errors"],
        json!([{"domain": "global", "reason": "notFound"}])
    );
}

#[tokio::test]
async fn the_fakes_free_busy_without_time_min_is_a_400() {
    let fake = FakeGoogle::start("owner@example.com").await;
    let (status, body) = free_busy(
        &fake,
        json!({"timeMax": "2026-03-03T00:00:00Z", "items": [{"id": "primary"}]}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 400);
    assert!(first_error(&body)["reason"].is_string());
}

async fn list(fake: &FakeGoogle, q: &str) -> Vec<String> {
    let token = fake.issue_access_token();
    let body: Value = client()
        .get(format!("{}/gmail/v1/users/me/messages", fake.base))
        .bearer_auth(&token)
        .query(&[("q", q)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ids: Vec<String> = body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn the_fakes_q_combines_from_after_before_newer_than_and_rfc822msgid() {
    let fake = FakeGoogle::start("owner@example.com").await;
    let now = Utc::now().timestamp_millis();
    let day = 86_400_000;
    fake.add_messages(vec![
        FakeMessage::new(
            "old",
            "alice@news.example.com",
            now - 10 * day,
            &[("Message-ID", "<old@x>")],
        ),
        FakeMessage::new(
            "mid",
            "alice@news.example.com",
            now - 3 * day,
            &[("Message-ID", "<mid@x>")],
        ),
        FakeMessage::new("new", "alice@news.example.com", now - day / 2, &[]),
        FakeMessage::new("bob", "bob@other.example.com", now - day / 2, &[]),
    ]);
    let secs = |ms: i64| (ms / 1000).to_string();
    assert_eq!(
        list(
            &fake,
            &format!("from:alice@news.example.com after:{}", secs(now - 5 * day))
        )
        .await,
        vec!["mid", "new"]
    );
    assert_eq!(
        list(
            &fake,
            &format!(
                "from:alice after:{} before:{}",
                secs(now - 5 * day),
                secs(now - day)
            )
        )
        .await,
        vec!["mid"]
    );
    assert_eq!(list(&fake, "newer_than:1d").await, vec!["bob", "new"]);
    assert_eq!(list(&fake, "from:bob newer_than:1d").await, vec!["bob"]);
    assert_eq!(list(&fake, "rfc822msgid:<mid@x>").await, vec!["mid"]);
    assert_eq!(list(&fake, "-from:bob newer_than:1d").await, vec!["new"]);
    assert_eq!(
        list(&fake, "in:inbox is:unread from:bob").await,
        vec!["bob"]
    );
    // A term the fake cannot apply is refused, never ignored (a broken `since` must show).
    let token = fake.issue_access_token();
    let refused = client()
        .get(format!("{}/gmail/v1/users/me/messages", fake.base))
        .bearer_auth(&token)
        .query(&[("q", "after:yesterday")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(
        list(&fake, "rfc822msgid:old@x from:bob").await,
        Vec::<String>::new()
    );
}

async fn get(fake: &FakeGoogle, query: &str) -> Value {
    let token = fake.issue_access_token();
    client()
        .get(format!(
            "{}/gmail/v1/users/me/messages/a1?{query}",
            fake.base
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_fake_honours_format_full_metadata_and_minimal() {
    let fake = FakeGoogle::start("owner@example.com").await;
    fake.add_messages(vec![FakeMessage::new(
        "a1",
        "alice@news.example.com",
        T0,
        &[("List-Id", "<news.example.com>")],
    )]);
    let minimal = get(&fake, "format=minimal").await;
    assert!(minimal.get("payload").is_none(), "{minimal}");
    assert_eq!(minimal["labelIds"], json!(["INBOX", "UNREAD"]));
    let metadata = get(&fake, "format=metadata&metadataHeaders=From").await;
    assert_eq!(metadata["payload"]["headers"].as_array().unwrap().len(), 1);
    // `metadataHeaders` only applies to `metadata`; `full` (the default) has every header.
    let full = get(&fake, "format=full&metadataHeaders=From").await;
    assert_eq!(full["payload"]["headers"].as_array().unwrap().len(), 3);
    assert!(full["payload"]["body"].is_object());
    let default = get(&fake, "").await;
    assert_eq!(default["payload"]["headers"].as_array().unwrap().len(), 3);
}
