//! The unsubscribe compliance report on the sample mailbox, before and after enforcement, with a
//! simulated clock.
//!
//! Run with: `cargo run -p quietbox-gmail --example compliance_figure`
//!
//! The sample (`data/sample/inbox.mbox`) holds mail from August to November 2026. The clock is
//! set to moments inside that range; quietbox unsubscribes the owner from a few lists then (the
//! sample's one-click endpoints are answered in-process, `mailto:` goes to a temp outbox), and
//! the report is computed on 2026-11-20 with `UNSUBSCRIBE_GRACE_H=48` and
//! `UNSUBSCRIBE_ENFORCE=archive`. The local provider never rewrites the mbox: enforcement records
//! `auto_archive` and reports the messages that would leave the inbox.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use quietbox_core::Quietbox;
use quietbox_core::compliance::{ComplianceReport, ComplianceStatus, Enforcement};
use quietbox_core::ports::{Clock, ManualClock, OneClickClient, OneClickResponse, OutboundError};
use quietbox_core::service::{Settings, UnsubscribeRequest, UnsubscribeTargetRef};
use quietbox_core::store::Decision;
use quietbox_gmail::local::{LocalCalendar, LocalMail, Outbox};
use quietbox_state::FileStore;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/sample");

/// The senders' one-click endpoints, simulated: every request is accepted.
struct AcceptingEndpoints;

#[async_trait]
impl OneClickClient for AcceptingEndpoints {
    async fn post_one_click(&self, _url: &str) -> Result<OneClickResponse, OutboundError> {
        Ok(OneClickResponse { status: 200 })
    }
}

fn at(month: u32, day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, month, day, hour, 0, 0)
        .single()
        .expect("a valid date")
}

fn day(date: Option<DateTime<Utc>>) -> String {
    date.map_or_else(|| "-".to_owned(), |d| d.format("%m-%d").to_string())
}

fn print(title: &str, report: &ComplianceReport) {
    println!(
        "{title} (checked {}, grace {} h, UNSUBSCRIBE_ENFORCE={})",
        report.checked_at.format("%Y-%m-%d %H:%M"),
        report.grace_hours,
        format!("{:?}", report.enforcement).to_lowercase()
    );
    println!(
        "  {:<28} {:<9} {:<12} {:<9} {:>10}  {:<12} decision",
        "sender", "method", "unsubscribed", "status", "violations", "first..last"
    );
    for e in &report.entries {
        println!(
            "  {:<28} {:<9} {:<12} {:<9} {:>10}  {:<12} {}",
            e.sender,
            e.method.as_str(),
            e.unsubscribed_at.format("%m-%d %H:%M").to_string(),
            e.status.as_str(),
            e.violations,
            format!(
                "{}..{}",
                day(e.first_violation_at),
                day(e.last_violation_at)
            ),
            e.decision.map_or("-", |d| d.as_str())
        );
    }
    let s = &report.summary;
    println!(
        "  summary: {} violating, {} pending, {} compliant; {} manual unsubscribe(s) not watched\n",
        s.violating, s.pending, s.compliant, report.manual_not_watched
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let clock = ManualClock::new(at(10, 20, 9));
    let quietbox = Quietbox::new(
        Arc::new(LocalMail::new(
            "owner@example.org",
            format!("{SAMPLE}/inbox.mbox"),
            Outbox::folder(dir.path().join("outbox")),
        )),
        Arc::new(LocalCalendar::new(format!("{SAMPLE}/calendar.ics"))),
        Arc::new(FileStore::open(dir.path().join("state")).expect("the state store")),
        Arc::new(AcceptingEndpoints),
        Arc::new(clock.clone()),
        Settings {
            enforcement: Enforcement::Archive,
            ..Settings::default()
        },
    );
    let unsubscribe = |sender: &'static str| {
        let quietbox = quietbox.clone();
        let clock = clock.clone();
        async move {
            let outcome = quietbox
                .unsubscribe(UnsubscribeRequest {
                    target: UnsubscribeTargetRef::Sender(sender.to_owned()),
                    dry_run: false,
                    actor: "api_key".to_owned(),
                })
                .await
                .expect("unsubscribe");
            println!(
                "{}  unsubscribe {sender}: {:?} via {}",
                now(&clock),
                outcome.result,
                outcome.method.as_str()
            );
        }
    };

    // 2026-10-20: the owner leaves four lists (one-click, mail, and a link-only one).
    for sender in [
        "deals@shop.example.com",
        "promo@gadgets.example.com",
        "offers@travel.example.net",
        "lug@lists.example.org",
        "digest@forum.example.net",
    ] {
        unsubscribe(sender).await;
    }
    // 2026-11-01: the owner decides to keep the travel offers after all.
    clock.set(at(11, 1, 9));
    quietbox
        .set_decision("offers@travel.example.net", Decision::Keep, "user-7")
        .await
        .expect("keep");
    println!("{}  decide keep offers@travel.example.net", now(&clock));
    // 2026-11-02: City Events, whose last letter comes on 11-03, inside the grace period.
    clock.set(at(11, 2, 9));
    unsubscribe("events@city.example.org").await;
    // 2026-11-18 12:00: the Garden Society; its letter of 11-19 is inside the grace period.
    clock.set(at(11, 18, 12));
    unsubscribe("members@garden.example.com").await;
    println!();

    clock.set(at(11, 20, 9));
    let before = quietbox.compliance().await.expect("compliance");
    print("BEFORE enforcement", &before);

    let outcome = quietbox.enforce("scheduler").await.expect("enforce");
    println!(
        "ENFORCEMENT at {} (UNSUBSCRIBE_ENFORCE=archive, local provider: reported, mbox untouched)",
        now(&clock)
    );
    for action in &outcome.actions {
        match (&action.skipped, &action.archive) {
            (Some(why), _) => println!("  {:<28} skipped: {why}", action.sender),
            (None, Some(archive)) => println!(
                "  {:<28} -> auto_archive (decision changed: {}); {} message(s) reported, e.g. {}",
                action.sender,
                action.decision_changed,
                archive.message_ids.len(),
                archive.message_ids.first().map_or("-", String::as_str)
            ),
            (None, None) => println!("  {:<28} nothing to do", action.sender),
        }
    }
    println!();

    let after = quietbox.compliance().await.expect("compliance");
    print("AFTER enforcement", &after);

    // The story above, checked, so this figure cannot silently change.
    let status = |report: &ComplianceReport, sender: &str| {
        report
            .entries
            .iter()
            .find(|e| e.sender == sender)
            .map(|e| (e.status, e.decision))
    };
    use ComplianceStatus::*;
    assert_eq!(
        status(&after, "deals@shop.example.com"),
        Some((Violating, Some(Decision::AutoArchive)))
    );
    assert_eq!(
        status(&after, "offers@travel.example.net"),
        Some((Violating, Some(Decision::Keep)))
    );
    assert_eq!(
        status(&after, "events@city.example.org").map(|s| s.0),
        Some(Compliant)
    );
    assert_eq!(
        status(&after, "members@garden.example.com").map(|s| s.0),
        Some(Pending)
    );
    assert_eq!(after.manual_not_watched, 1);
    assert_eq!(
        after.summary, before.summary,
        "enforcement changes decisions, not facts"
    );
}

fn now(clock: &ManualClock) -> String {
    clock.now().format("%Y-%m-%d %H:%M").to_string()
}
