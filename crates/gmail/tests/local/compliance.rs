//! Sender decisions and the compliance watch on the local provider, driven by the manual clock:
//! mail delivered into the mbox inside and after the grace period, enforcement that records
//! `auto_archive` and reports the message ids (an mbox is never rewritten), the digest's
//! "still sending" section, and incident mode.

use chrono::{DateTime, Duration, TimeZone, Utc};
use quietbox_core::compliance::{ComplianceStatus, Enforcement};
use quietbox_core::ports::NoProgress;
use quietbox_core::service::{
    CoreError, ScanOptions, Settings, UnsubscribeRequest, UnsubscribeResult, UnsubscribeTargetRef,
};
use quietbox_core::store::Decision;

use crate::support::{World, dated, newsletter, world_with_messages_and};

const SENDER: &str = "news@a.example.com";

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
}

fn letter(id: &str, date: DateTime<Utc>) -> String {
    dated(
        &newsletter(SENDER, "<mailto:leave@a.example.com>", false),
        id,
        date,
    )
}

/// A mailbox with one newsletter (from the 23rd) and a friend; the clock on the 24th at 09:00.
fn world(enforcement: Enforcement) -> World {
    world_with_messages_and(
        &[
            letter("n0", at(23, 9)),
            dated(
                "From: Friend <friend@b.example.org>\nSubject: lunch?\nX-Gmail-Labels: Inbox\n",
                "f0",
                at(23, 12),
            ),
        ],
        Settings {
            enforcement,
            ..Settings::default()
        },
    )
}

async fn unsubscribe(world: &World) {
    let outcome = world
        .quietbox
        .unsubscribe(UnsubscribeRequest {
            target: UnsubscribeTargetRef::Sender(SENDER.into()),
            dry_run: false,
            actor: "api_key".into(),
        })
        .await
        .unwrap();
    assert_eq!(outcome.result, UnsubscribeResult::Unsubscribed);
}

/// New mail arrives: it lands in the mbox and the service scans, as the scheduler would.
async fn deliver(world: &World, messages: &[String]) {
    world.deliver(messages);
    world
        .quietbox
        .scan(ScanOptions::default(), &NoProgress)
        .await
        .unwrap();
}

async fn status(world: &World) -> (ComplianceStatus, usize) {
    let report = world.quietbox.compliance().await.unwrap();
    assert_eq!(report.entries.len(), 1, "{report:?}");
    (report.entries[0].status, report.entries[0].violations)
}

#[tokio::test]
async fn mail_inside_the_grace_period_is_pending_and_after_it_violating() {
    let world = world(Enforcement::Report);
    unsubscribe(&world).await;
    assert_eq!(
        status(&world).await,
        (ComplianceStatus::Pending, 0),
        "mail from before the unsubscribe never counts"
    );

    world.clock.set(at(25, 10));
    deliver(&world, &[letter("n1", at(25, 9))]).await;
    assert_eq!(
        status(&world).await,
        (ComplianceStatus::Pending, 0),
        "inside the 48 h grace period"
    );

    world.clock.set(at(26, 10));
    assert_eq!(
        status(&world).await,
        (ComplianceStatus::Compliant, 0),
        "the grace period ended with nothing after it"
    );

    world.clock.set(at(27, 9));
    deliver(&world, &[letter("n2", at(26, 11)), letter("n3", at(27, 8))]).await;
    let report = world.quietbox.compliance().await.unwrap();
    let entry = &report.entries[0];
    assert_eq!(
        (entry.status, entry.violations),
        (ComplianceStatus::Violating, 2)
    );
    assert_eq!(entry.unsubscribed_at, at(24, 9));
    assert_eq!(entry.grace_ends_at, at(26, 9));
    assert_eq!(
        (entry.first_violation_at, entry.last_violation_at),
        (Some(at(26, 11)), Some(at(27, 8)))
    );
    assert_eq!(
        entry.violating_message_ids,
        ["n2@test.example", "n3@test.example"]
    );
    assert_eq!(entry.decision, Some(Decision::Unsubscribed));
    assert_eq!(report.summary.violating, 1);
    assert_eq!(report.enforcement, Enforcement::Report);

    // The sender's view carries the decision and the compliance.
    let view = world.quietbox.sender("NEWS@a.example.com").await.unwrap();
    assert_eq!(view.stats.count, 4);
    assert_eq!(
        view.decision.map(|d| (d.decision, d.actor)),
        Some((Decision::Unsubscribed, "api_key".to_owned()))
    );
    assert_eq!(view.compliance[0].status, ComplianceStatus::Violating);

    // Report mode changes nothing.
    let outcome = world.quietbox.enforce("scheduler").await.unwrap();
    assert!(outcome.actions.is_empty());
}

#[tokio::test]
async fn a_custom_grace_period_moves_the_deadline() {
    let world = world_with_messages_and(
        &[letter("n0", at(23, 9))],
        Settings {
            unsubscribe_grace: std::time::Duration::from_secs(6 * 3600),
            ..Settings::default()
        },
    );
    unsubscribe(&world).await;
    world.clock.set(at(24, 20));
    deliver(&world, &[letter("n1", at(24, 16))]).await;
    let report = world.quietbox.compliance().await.unwrap();
    assert_eq!(report.grace_hours, 6);
    assert_eq!(report.entries[0].status, ComplianceStatus::Violating);
}

#[tokio::test]
async fn enforcement_records_auto_archive_and_reports_the_message_ids_without_touching_the_mbox() {
    let world = world(Enforcement::Archive);
    unsubscribe(&world).await;
    world.clock.set(at(28, 9));
    deliver(&world, &[letter("n1", at(25, 9)), letter("n2", at(27, 9))]).await;
    let mbox_before = std::fs::read(world.mbox()).unwrap();

    let first = world.quietbox.enforce("scheduler").await.unwrap();
    assert_eq!(first.report.summary.violating, 1);
    let action = &first.actions[0];
    assert_eq!(action.sender, SENDER);
    assert!(action.decision_changed);
    let archive = action.archive.as_ref().unwrap();
    assert!(!archive.applied, "the local provider only reports");
    assert_eq!(archive.message_ids, ["n2@test.example"]);
    assert_eq!(archive.filter_id, None);
    let decisions = world.quietbox.state().sender_decisions().await.unwrap();
    assert_eq!(
        (
            decisions[0].decision,
            decisions[0].actor.as_str(),
            decisions[0].decided_at
        ),
        (Decision::AutoArchive, "scheduler", at(28, 9))
    );
    assert_eq!(std::fs::read(world.mbox()).unwrap(), mbox_before);

    // A rerun changes no decision (nor its time) and reports the same messages.
    world.clock.advance(Duration::hours(1));
    let again = world.quietbox.enforce("scheduler").await.unwrap();
    assert!(!again.actions[0].decision_changed);
    assert_eq!(
        again.actions[0].archive.as_ref().unwrap().message_ids,
        ["n2@test.example"]
    );
    let decisions = world.quietbox.state().sender_decisions().await.unwrap();
    assert_eq!(decisions[0].decided_at, at(28, 9));
    assert_eq!(
        world.quietbox.compliance().await.unwrap().entries[0].decision,
        Some(Decision::AutoArchive)
    );
}

#[tokio::test]
async fn enforcement_leaves_a_kept_sender_alone() {
    let world = world(Enforcement::Archive);
    unsubscribe(&world).await;
    world.clock.set(at(28, 9));
    deliver(&world, &[letter("n1", at(27, 9))]).await;
    let kept = world
        .quietbox
        .set_decision(SENDER, Decision::Keep, "user-7")
        .await
        .unwrap();
    assert_eq!(kept.previous, Some(Decision::Unsubscribed));
    assert_eq!(kept.rules_removed, None);
    let outcome = world.quietbox.enforce("scheduler").await.unwrap();
    assert!(outcome.actions[0].skipped.is_some());
    assert!(outcome.actions[0].archive.is_none());
    let decisions = world.quietbox.state().sender_decisions().await.unwrap();
    assert_eq!(
        (decisions[0].decision, decisions[0].actor.as_str()),
        (Decision::Keep, "user-7")
    );
}

#[tokio::test]
async fn auto_archive_reports_the_senders_inbox_messages_and_keep_undoes_it() {
    let world = world(Enforcement::Report);
    world.deliver(&[letter("n1", at(23, 10))]);
    let outcome = world
        .quietbox
        .set_decision(SENDER, Decision::AutoArchive, "user-7")
        .await
        .unwrap();
    assert_eq!(outcome.decision.decision, Decision::AutoArchive);
    assert_eq!(outcome.decision.decided_at, at(24, 9));
    assert_eq!(outcome.previous, None);
    let archive = outcome.archive.unwrap();
    assert!(!archive.applied);
    let mut ids = archive.message_ids;
    ids.sort();
    assert_eq!(ids, ["n0@test.example", "n1@test.example"]);
    // A successful unsubscribe does not hide the auto_archive decision.
    unsubscribe(&world).await;
    let decisions = world.quietbox.state().sender_decisions().await.unwrap();
    assert_eq!(decisions[0].decision, Decision::AutoArchive);
    let kept = world
        .quietbox
        .set_decision(SENDER, Decision::Keep, "user-7")
        .await
        .unwrap();
    assert_eq!(kept.previous, Some(Decision::AutoArchive));
    assert_eq!(
        kept.rules_removed,
        Some(0),
        "the local provider has no rules"
    );
    assert!(matches!(
        world
            .quietbox
            .set_decision(SENDER, Decision::Unsubscribed, "user-7")
            .await,
        Err(CoreError::InvalidInput(_))
    ));
}

#[tokio::test]
async fn the_digest_lists_senders_still_sending_after_unsubscribe() {
    let world = world(Enforcement::Report);
    unsubscribe(&world).await;
    world.clock.set(at(28, 9));
    deliver(&world, &[letter("n1", at(27, 9))]).await;
    let digest = world.quietbox.digest(true).await.unwrap();
    assert!(digest.candidates.is_empty(), "the only list was left");
    assert_eq!(digest.still_sending.len(), 1);
    assert!(digest.sent, "a violation is news");
    assert!(
        digest.text.contains("Still sending after unsubscribe (1):")
            && digest.text.contains(SENDER)
            && digest
                .text
                .contains("1 message from 2026-11-27 to 2026-11-27"),
        "{}",
        digest.text
    );
    let mail = world.sent_mails().pop().unwrap();
    assert!(
        mail.contains("still sending after unsubscribe") && mail.contains("<h2>Still sending"),
        "{mail}"
    );
}

#[tokio::test]
async fn incident_mode_blocks_decisions_and_enforcement_but_not_the_report() {
    let world = world(Enforcement::Archive);
    unsubscribe(&world).await;
    world.clock.set(at(28, 9));
    deliver(&world, &[letter("n1", at(27, 9))]).await;
    world
        .quietbox
        .incident_start(std::time::Duration::from_secs(3600), "drill", "ops")
        .await
        .unwrap();
    assert!(matches!(
        world.quietbox.enforce("scheduler").await,
        Err(CoreError::IncidentActive { .. })
    ));
    assert!(matches!(
        world
            .quietbox
            .set_decision(SENDER, Decision::AutoArchive, "me")
            .await,
        Err(CoreError::IncidentActive { .. })
    ));
    assert_eq!(
        world.quietbox.compliance().await.unwrap().summary.violating,
        1
    );
    let decisions = world.quietbox.state().sender_decisions().await.unwrap();
    assert_eq!(
        decisions[0].decision,
        Decision::Unsubscribed,
        "nothing changed"
    );
    world.clock.advance(Duration::minutes(61));
    assert_eq!(
        world
            .quietbox
            .enforce("scheduler")
            .await
            .unwrap()
            .actions
            .len(),
        1
    );
}
