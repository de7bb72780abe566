//! The compliance watch and enforcement against testkit's fake Google, through the real use
//! cases, the file state store and a manual clock: one filter and one `batchModify` for a sender
//! that ignores an unsubscribe, idempotent on rerun, and a named error for a token without the
//! scope it needs.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use quietbox_core::compliance::{ComplianceStatus, Enforcement};
use quietbox_core::ports::{ManualClock, ProviderError};
use quietbox_core::service::{
    CoreError, Settings, UnsubscribeRequest, UnsubscribeResult, UnsubscribeTargetRef,
};
use quietbox_core::store::Decision;
use quietbox_core::{ErrorCode, Quietbox};
use quietbox_gmail::google::{
    GMAIL_MODIFY, GMAIL_SETTINGS_BASIC, GmailProvider, GoogleApi, GoogleCalendar, QuotaBucket,
    RetryPolicy, TokenManager,
};
use quietbox_gmail::outbound::{OutboundPolicy, SsrfGuardedClient};
use quietbox_state::FileStore;
use quietbox_testkit::{FakeGoogle, FakeMessage, scopes};
use serde_json::json;

const LIST: &str = "news@list.example.com";

/// When the owner unsubscribes.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap()
}

fn hours(h: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::hours(h)
}

fn letter(id: &str, from: &str, at: DateTime<Utc>) -> FakeMessage {
    FakeMessage::new(
        id,
        from,
        at.timestamp_millis(),
        &[
            ("List-Id", "\"List News\" <news.list.example.com>"),
            ("List-Unsubscribe", "<mailto:leave@list.example.com>"),
        ],
    )
}

struct Rig {
    fake: FakeGoogle,
    quietbox: Quietbox,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

/// The use cases on the fake Google with `granted` scopes, enforcement set to archive, a clock
/// at `t0`, and the list's first letter (a day before) already scanned.
async fn rig(granted: &[&str]) -> Rig {
    let fake = FakeGoogle::start("owner@example.com").await;
    fake.set_quota(1_000_000);
    fake.grant_scopes("refresh-1", granted);
    fake.add_messages(vec![
        letter("l0", LIST, hours(-24)),
        FakeMessage::new(
            "p0",
            "friend@b.example.org",
            hours(-2).timestamp_millis(),
            &[],
        ),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("token.json");
    std::fs::write(
        &token_path,
        json!({"refresh_token": "refresh-1", "token_uri": format!("{}/token", fake.base), "client_id": "cid"})
            .to_string(),
    )
    .unwrap();
    let http = reqwest::Client::new();
    let tokens = Arc::new(TokenManager::load(&token_path, http.clone()).unwrap());
    let retry = RetryPolicy {
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        attempts: 5,
        timeout: Duration::from_secs(5),
    };
    let api = GoogleApi::new(
        http,
        &fake.base,
        tokens,
        Arc::new(QuotaBucket::new(1_000_000)),
        retry,
    );
    let clock = ManualClock::new(t0());
    let quietbox = Quietbox::new(
        Arc::new(GmailProvider::new(api.clone(), "owner@example.com", 4)),
        Arc::new(GoogleCalendar::new(api)),
        Arc::new(FileStore::open(dir.path().join("state")).unwrap()),
        Arc::new(SsrfGuardedClient::new(OutboundPolicy::allow_loopback_for_tests()).unwrap()),
        Arc::new(clock.clone()),
        Settings {
            enforcement: Enforcement::Archive,
            ..Settings::default()
        },
    );
    let outcome = quietbox
        .unsubscribe(UnsubscribeRequest {
            target: UnsubscribeTargetRef::Sender(LIST.into()),
            dry_run: false,
            actor: "api_key".into(),
        })
        .await
        .unwrap();
    assert_eq!(outcome.result, UnsubscribeResult::Unsubscribed);
    Rig {
        fake,
        quietbox,
        clock,
        _dir: dir,
    }
}

/// The list keeps mailing: one letter inside the grace period, two after it (one from another
/// address of the same list), and unrelated mail; the clock then stands after all of them.
fn keep_mailing(rig: &Rig) {
    rig.fake.add_messages(vec![
        letter("l1", LIST, hours(10)),
        letter("l2", LIST, hours(50)),
        letter("l3", "\"Promo\" <promo@list.example.com>", hours(60)),
        FakeMessage::new(
            "p1",
            "friend@b.example.org",
            hours(61).timestamp_millis(),
            &[],
        ),
    ]);
    rig.clock.set(hours(62));
}

fn in_inbox(rig: &Rig, id: &str) -> bool {
    rig.fake.labels(id).unwrap().contains(&"INBOX".to_owned())
}

#[tokio::test]
async fn compliance_is_answered_from_the_history_not_a_rescan() {
    let rig = rig(scopes::ALL).await;
    let listings = rig.fake.calls("messages.list");
    rig.clock.set(hours(10));
    assert_eq!(
        rig.quietbox.compliance().await.unwrap().entries[0].status,
        ComplianceStatus::Pending
    );
    keep_mailing(&rig);
    let report = rig.quietbox.compliance().await.unwrap();
    let entry = &report.entries[0];
    assert_eq!(
        (entry.status, entry.violations),
        (ComplianceStatus::Violating, 2)
    );
    assert_eq!(entry.violating_message_ids, ["l2", "l3"]);
    assert_eq!(
        (entry.first_violation_at, entry.last_violation_at),
        (Some(hours(50)), Some(hours(60)))
    );
    assert_eq!(
        rig.fake.calls("messages.list"),
        listings,
        "no full listing: only history.list and the new messages"
    );
    assert!(rig.fake.calls("history.list") >= 2);
}

#[tokio::test]
async fn enforcement_creates_one_filter_and_archives_the_violating_messages_idempotently() {
    let rig = rig(scopes::ALL).await;
    keep_mailing(&rig);
    let first = rig.quietbox.enforce("scheduler").await.unwrap();
    assert_eq!(first.actions.len(), 1);
    let action = &first.actions[0];
    assert!(action.decision_changed);
    let archive = action.archive.as_ref().unwrap();
    assert!(archive.applied && archive.filter_created);
    assert_eq!(archive.message_ids, ["l2", "l3"]);

    let filters = rig.fake.filters();
    assert_eq!(filters.len(), 1);
    assert_eq!(
        filters[0]["criteria"],
        json!({"query": "list:news.list.example.com"})
    );
    assert_eq!(filters[0]["action"], json!({"removeLabelIds": ["INBOX"]}));
    assert_eq!(archive.filter_id.as_deref(), filters[0]["id"].as_str());
    assert!(!in_inbox(&rig, "l2") && !in_inbox(&rig, "l3"));
    assert!(
        in_inbox(&rig, "l0") && in_inbox(&rig, "l1") && in_inbox(&rig, "p1"),
        "mail before the deadline and other senders stay"
    );
    let decisions = rig.quietbox.state().sender_decisions().await.unwrap();
    assert_eq!(
        (decisions[0].decision, decisions[0].actor.as_str()),
        (Decision::AutoArchive, "scheduler")
    );

    // Rerun: the same filter is found, nothing is left to archive.
    rig.clock.set(hours(63));
    let again = rig.quietbox.enforce("scheduler").await.unwrap();
    let archive = again.actions[0].archive.as_ref().unwrap();
    assert!(!archive.filter_created && !again.actions[0].decision_changed);
    assert!(archive.message_ids.is_empty(), "{archive:?}");
    assert_eq!(rig.fake.filters().len(), 1, "exactly one filter");
    assert_eq!(rig.fake.calls("settings.filters.create"), 1);
    assert_eq!(rig.fake.calls("messages.batchModify"), 1);

    // The filter keeps the list's next letter out of the inbox on delivery.
    rig.fake.add_messages(vec![letter("l4", LIST, hours(64))]);
    rig.clock.set(hours(65));
    assert!(!in_inbox(&rig, "l4"));
    let third = rig.quietbox.enforce("scheduler").await.unwrap();
    assert_eq!(third.report.entries[0].violations, 3);
    assert!(
        third.actions[0]
            .archive
            .as_ref()
            .unwrap()
            .message_ids
            .is_empty()
    );
    assert_eq!(rig.fake.calls("messages.batchModify"), 1);

    // Keep undoes it: quietbox's filter goes, the decision is the owner's.
    let kept = rig
        .quietbox
        .set_decision(LIST, Decision::Keep, "user-7")
        .await
        .unwrap();
    assert_eq!(kept.rules_removed, Some(1));
    assert!(rig.fake.filters().is_empty());
}

#[tokio::test]
async fn auto_archive_by_the_owner_filters_the_sender_and_clears_its_inbox() {
    let rig = rig(scopes::ALL).await;
    rig.fake.add_messages(vec![
        FakeMessage::new("d1", "deals@shop.example", hours(1).timestamp_millis(), &[]),
        FakeMessage::new(
            "d2",
            "Deals <DEALS@shop.example>",
            hours(2).timestamp_millis(),
            &[],
        ),
    ]);
    rig.clock.set(hours(3));
    rig.quietbox.compliance().await.unwrap(); // the service picks the new mail up
    let outcome = rig
        .quietbox
        .set_decision("deals@shop.example", Decision::AutoArchive, "user-7")
        .await
        .unwrap();
    let archive = outcome.archive.unwrap();
    assert!(archive.applied && archive.filter_created);
    let mut ids = archive.message_ids.clone();
    ids.sort();
    assert_eq!(ids, ["d1", "d2"]);
    assert_eq!(
        rig.fake.filters()[0]["criteria"],
        json!({"from": "deals@shop.example"})
    );
    assert!(!in_inbox(&rig, "d1") && !in_inbox(&rig, "d2"));
    // Deciding it again finds the same filter.
    let again = rig
        .quietbox
        .set_decision("deals@shop.example", Decision::AutoArchive, "user-7")
        .await
        .unwrap();
    assert!(!again.archive.unwrap().filter_created);
    assert_eq!(rig.fake.filters().len(), 1);
}

#[tokio::test]
async fn a_token_without_the_settings_scope_gets_an_error_naming_it() {
    let rig = rig(scopes::DEFAULT).await;
    keep_mailing(&rig);
    let error = rig.quietbox.enforce("scheduler").await.unwrap_err();
    let CoreError::Provider(ProviderError::MissingScope { scope, .. }) = &error else {
        panic!("expected a missing scope, got {error:?}");
    };
    assert_eq!(scope, GMAIL_SETTINGS_BASIC);
    assert_eq!(error.code(), ErrorCode::UpstreamScopeMissing);
    let message = error.to_string();
    assert!(
        message.contains("gmail.settings.basic") && message.contains("login --archive"),
        "{message}"
    );
    assert!(rig.fake.filters().is_empty());
    assert!(in_inbox(&rig, "l2"), "nothing was archived");
    let decisions = rig.quietbox.state().sender_decisions().await.unwrap();
    assert_eq!(
        decisions[0].decision,
        Decision::Unsubscribed,
        "the decision changes only once the provider did its part"
    );
}

#[tokio::test]
async fn a_token_without_the_modify_scope_gets_an_error_naming_it() {
    let rig = rig(&[
        scopes::GMAIL_READONLY,
        scopes::GMAIL_SEND,
        scopes::GMAIL_SETTINGS_BASIC,
    ])
    .await;
    keep_mailing(&rig);
    let error = rig.quietbox.enforce("scheduler").await.unwrap_err();
    let CoreError::Provider(ProviderError::MissingScope { scope, .. }) = &error else {
        panic!("expected a missing scope, got {error:?}");
    };
    assert_eq!(scope, GMAIL_MODIFY);
    assert!(error.to_string().contains("gmail.modify"));
}
