//! Scan, candidates, availability and digest on the sample data.

use chrono::{Duration, TimeZone, Utc};
use quietbox_core::availability::{AvailabilityQuery, WorkingHours};
use quietbox_core::ports::NoProgress;
use quietbox_core::service::{CoreError, ScanOptions, UnsubscribeRequest, UnsubscribeTargetRef};
use quietbox_core::store::{Decision, UnsubscribeMethod};

use crate::support::sample_world;

#[tokio::test]
async fn the_sample_inbox_is_triaged_into_every_class() {
    let world = sample_world();
    let report = world
        .quietbox
        .scan(ScanOptions::default(), &NoProgress)
        .await
        .unwrap();
    let c = &report.classes;
    eprintln!("sample triage: {} messages: {c:?}", report.total);
    assert_eq!(report.total, 300);
    assert_eq!(c.newsletter + c.notification + c.personal + c.other, 300);
    assert!(
        c.newsletter > 150 && c.notification >= 50 && c.personal >= 30 && c.other >= 1,
        "{c:?}"
    );
    assert!(!report.incremental, "an mbox is always listed in full");
    let deals = report
        .senders
        .iter()
        .find(|s| s.address == "deals@shop.example.com")
        .unwrap();
    assert_eq!(deals.count, 40);
    assert!(deals.unread_ratio > 0.8);
    assert_eq!(report.messages.len(), 100, "default message limit");
}

#[tokio::test]
async fn candidates_rank_ignored_bulk_mail_first_and_offer_each_method() {
    let world = sample_world();
    let candidates = world.quietbox.candidates().await.unwrap();
    let count = |m| candidates.iter().filter(|c| c.method == m).count();
    eprintln!(
        "sample candidates: {} (one-click {}, mailto {}, manual {})",
        candidates.len(),
        count(UnsubscribeMethod::OneClick),
        count(UnsubscribeMethod::Mailto),
        count(UnsubscribeMethod::Manual)
    );
    assert!(
        count(UnsubscribeMethod::OneClick) >= 7
            && count(UnsubscribeMethod::Mailto) >= 3
            && count(UnsubscribeMethod::Manual) >= 3
    );
    assert!(
        candidates
            .iter()
            .all(|c| c.sender.class != quietbox_core::triage::Class::Personal),
        "personal senders are never candidates"
    );
    // The most ignored high-volume one-click list leads.
    assert_eq!(candidates[0].sender.address, "deals@shop.example.com");
    // Ids are stable across calls.
    assert_eq!(
        world.quietbox.candidates().await.unwrap()[0].id,
        candidates[0].id
    );
}

#[tokio::test]
async fn kept_senders_are_never_candidates() {
    let world = sample_world();
    world
        .quietbox
        .set_decision("Deals@Shop.example.com", Decision::Keep, "me")
        .await
        .unwrap();
    let candidates = world.quietbox.candidates().await.unwrap();
    assert!(
        candidates
            .iter()
            .all(|c| c.sender.address != "deals@shop.example.com")
    );
    assert!(matches!(
        world
            .quietbox
            .set_decision("not an address", Decision::Keep, "me")
            .await,
        Err(CoreError::InvalidInput(_))
    ));
}

#[tokio::test]
async fn free_slots_come_from_the_sample_calendar() {
    let world = sample_world();
    // Wednesday 2026-11-25 in Paris: standup 09:30-09:45, review 14:00-16:00 local.
    let query = AvailabilityQuery {
        start: Utc.with_ymd_and_hms(2026, 11, 24, 23, 0, 0).unwrap(),
        end: Utc.with_ymd_and_hms(2026, 11, 25, 23, 0, 0).unwrap(),
        slot: Duration::minutes(60),
        hours: WorkingHours::default(),
        tz: chrono_tz::Europe::Paris,
    };
    let availability = world.quietbox.availability(query.clone()).await.unwrap();
    let local: Vec<String> = availability
        .slots
        .iter()
        .map(|s| {
            s.start
                .with_timezone(&chrono_tz::Europe::Paris)
                .format("%H:%M")
                .to_string()
        })
        .collect();
    assert_eq!(local, ["09:45", "10:45", "11:45", "12:45", "16:00"]);
    assert_eq!(availability.busy.len(), 2);
    let bad = AvailabilityQuery {
        end: query.start,
        ..query
    };
    assert!(matches!(
        world.quietbox.availability(bad).await,
        Err(CoreError::InvalidInput(_))
    ));
}

#[tokio::test]
async fn the_digest_is_sent_once_and_never_repeats_a_link() {
    let world = sample_world();
    let preview = world.quietbox.digest(false).await.unwrap();
    assert!(
        !preview.sent && world.sent_mails().is_empty(),
        "a preview sends nothing"
    );
    let first = world.quietbox.digest(true).await.unwrap();
    assert!(first.sent);
    assert_eq!(first.to, "owner@example.org");
    let mails = world.sent_mails();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].contains("multipart/alternative") && mails[0].contains("text/html"),
        "{}",
        &mails[0][..400.min(mails[0].len())]
    );
    assert!(mails[0].contains("Daily Deals"));
    let links = world.quietbox.state().sent_links().await.unwrap();
    assert_eq!(links.len(), first.candidates.len());
    let second = world.quietbox.digest(true).await.unwrap();
    assert!(
        second.candidates.is_empty() && !second.sent,
        "nothing new, no mail"
    );
    assert_eq!(world.sent_mails().len(), 1);
}

#[tokio::test]
async fn incident_mode_blocks_mutations_until_its_ttl_ends() {
    let world = sample_world();
    world
        .quietbox
        .incident_start(std::time::Duration::from_secs(3600), "token leak", "ops")
        .await
        .unwrap();
    let request = UnsubscribeRequest {
        target: UnsubscribeTargetRef::Sender("lug@lists.example.org".into()),
        dry_run: false,
        actor: "me".into(),
    };
    assert!(matches!(
        world.quietbox.unsubscribe(request.clone()).await,
        Err(CoreError::IncidentActive { .. })
    ));
    assert!(matches!(
        world.quietbox.digest(true).await,
        Err(CoreError::IncidentActive { .. })
    ));
    assert!(matches!(
        world
            .quietbox
            .set_decision("a@example.com", Decision::Keep, "me")
            .await,
        Err(CoreError::IncidentActive { .. })
    ));
    // Reads and dry runs still work.
    assert!(world.quietbox.candidates().await.is_ok());
    assert!(
        world
            .quietbox
            .unsubscribe(UnsubscribeRequest {
                dry_run: true,
                ..request.clone()
            })
            .await
            .is_ok()
    );
    assert!(world.quietbox.incident_status().await.unwrap().active);
    world.clock.advance(chrono::Duration::minutes(61));
    assert!(
        !world.quietbox.incident_status().await.unwrap().active,
        "it ends by itself"
    );
    assert!(world.quietbox.unsubscribe(request).await.is_ok());
    assert!(
        world
            .sent_mails()
            .iter()
            .any(|m| m.contains("To: lug-leave@lists.example.org"))
    );
}
