//! Requests cannot buy unbounded work or smuggle control characters: far windows are refused,
//! recurrences are expanded from the window, and senders are parsed addresses.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use quietbox_core::availability::{AvailabilityQuery, WorkingHours};
use quietbox_core::service::{CoreError, Settings};
use quietbox_core::store::Decision;
use quietbox_core::{ErrorCode, Quietbox};
use quietbox_gmail::local::{LocalCalendar, LocalMail, Outbox};
use quietbox_gmail::outbound::{OutboundPolicy, SsrfGuardedClient};
use quietbox_state::FileStore;

use crate::support::{newsletter, sample_world, world_with_messages};

fn invalid(result: Result<impl std::fmt::Debug, CoreError>, needle: &str) {
    match result {
        Err(e) => {
            assert_eq!(e.code(), ErrorCode::InvalidRequest, "{e}");
            assert!(e.to_string().contains(needle), "{e}");
        }
        Ok(v) => panic!("expected a validation error naming {needle:?}, got {v:?}"),
    }
}

#[tokio::test]
async fn a_far_future_window_is_refused_at_once() {
    // The sample calendar's weekday standup from 2026: expanded up to 9999 it is two million
    // instances (seconds of CPU); the window's position is refused before any expansion.
    let world = sample_world();
    let far = Utc.with_ymd_and_hms(9999, 12, 31, 0, 0, 0).unwrap();
    let query = AvailabilityQuery {
        start: far,
        end: far + Duration::days(1),
        slot: Duration::minutes(30),
        hours: WorkingHours::default(),
        tz: chrono_tz::Europe::Paris,
    };
    let started = Instant::now();
    invalid(
        world.quietbox.availability(query).await,
        "more than 5 years from now",
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    let now = Utc::now();
    for (start, slot) in [
        (Some(far), None),
        (Some(DateTime::<Utc>::MAX_UTC), None),
        (None, Some(i64::MAX)),
    ] {
        let refused = AvailabilityQuery::from_request(
            now,
            start,
            None,
            slot,
            WorkingHours::default(),
            chrono_tz::UTC,
        );
        assert!(
            matches!(refused, Err(CoreError::InvalidInput(_))),
            "{refused:?}"
        );
    }
}

#[tokio::test]
async fn a_daily_series_begun_in_1990_is_busy_in_2026() {
    let dir = tempfile::tempdir().unwrap();
    let ics = dir.path().join("calendar.ics");
    std::fs::write(
        &ics,
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//quietbox//test//EN\r\nBEGIN:VEVENT\r\n\
UID:since-1990\r\nDTSTART;TZID=Europe/Paris:19900102T100000\r\nDTEND;TZID=Europe/Paris:19900102T110000\r\n\
RRULE:FREQ=DAILY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    )
    .unwrap();
    let mbox = dir.path().join("inbox.mbox");
    std::fs::write(&mbox, "").unwrap();
    let clock = quietbox_core::ports::ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap(),
    );
    let quietbox = Quietbox::new(
        Arc::new(LocalMail::new(
            "owner@example.org",
            &mbox,
            Outbox::folder(dir.path().join("outbox")),
        )),
        Arc::new(LocalCalendar::new(&ics)),
        Arc::new(FileStore::open(dir.path().join("state")).unwrap()),
        Arc::new(SsrfGuardedClient::new(OutboundPolicy::allow_loopback_for_tests()).unwrap()),
        Arc::new(clock),
        Settings::default(),
    );
    let paris = chrono_tz::Europe::Paris;
    let (start, end) = (
        Utc.with_ymd_and_hms(2026, 11, 23, 23, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 11, 26, 23, 0, 0).unwrap(),
    );
    let query = AvailabilityQuery::from_request(
        start,
        Some(start),
        Some(end),
        Some(60),
        WorkingHours::default(),
        paris,
    )
    .unwrap();
    let availability = quietbox.availability(query).await.unwrap();
    // 10:00-11:00 local on the 24th, 25th and 26th, derived by date arithmetic.
    let expected: Vec<(DateTime<Utc>, DateTime<Utc>)> = (24..=26)
        .map(|day| {
            let local = NaiveDate::from_ymd_opt(2026, 11, day)
                .unwrap()
                .and_hms_opt(10, 0, 0)
                .unwrap();
            let start = paris.from_local_datetime(&local).single().unwrap().to_utc();
            (start, start + Duration::hours(1))
        })
        .collect();
    let busy: Vec<(DateTime<Utc>, DateTime<Utc>)> =
        availability.busy.iter().map(|b| (b.start, b.end)).collect();
    assert_eq!(busy, expected);
    assert_eq!(
        expected[0].0,
        Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap()
    );
    assert!(
        availability
            .slots
            .iter()
            .all(|s| s.start.with_timezone(&paris).format("%H").to_string() != "10")
    );
}

#[tokio::test]
async fn a_strangers_from_with_esc_never_reaches_a_sender_raw() {
    let world = world_with_messages(&[
        newsletter(
            "\"Mega\u{1b}[2J\u{1b}]0;pwned\u{7}Deals\" <deals@evil.example>",
            "<https://evil.example/u>",
            true,
        ),
        newsletter(
            "\"Plain\" <news@evil\u{1b}[31m.example>",
            "<https://evil.example/v>",
            true,
        ),
    ]);
    let candidates = world.quietbox.candidates().await.unwrap();
    for candidate in &candidates {
        let sender = &candidate.sender;
        assert!(!sender.address.contains(char::is_control), "{sender:?}");
        assert!(
            !sender
                .name
                .as_deref()
                .unwrap_or("")
                .contains(char::is_control),
            "{sender:?}"
        );
    }
    // The name's controls are escaped (the sender is still counted); the address with ESC is
    // not an address.
    let deals = candidates
        .iter()
        .find(|c| c.sender.address == "deals@evil.example")
        .expect("the sender with ESC in its name is still a candidate");
    assert_eq!(
        deals.sender.name.as_deref(),
        Some("Mega\u{fffd}[2J\u{fffd}]0;pwned\u{fffd}Deals")
    );
    assert!(
        candidates
            .iter()
            .all(|c| !c.sender.address.contains("evil") || c.sender.address == "deals@evil.example")
    );
}

#[tokio::test]
async fn decisions_take_a_parsed_address_and_store_it() {
    let world = sample_world();
    for junk in [
        "a\r\nFORGED@evil.example",
        "a\r\nFORGED log line level=INFO",
        "deals@shop.example.com\u{1b}[2J",
        "Deals <deals@shop.example.com>",
        "\0",
    ] {
        invalid(
            world
                .quietbox
                .set_decision(junk, Decision::Keep, "me")
                .await,
            "is not an email address",
        );
        invalid(world.quietbox.sender(junk).await, "is not an email address");
    }
    let outcome = world
        .quietbox
        .set_decision(" <Deals@Shop.Example.COM> ", Decision::Keep, "me")
        .await
        .unwrap();
    assert_eq!(outcome.decision.sender, "deals@shop.example.com");
    let stored = world.quietbox.state().sender_decisions().await.unwrap();
    let senders: Vec<&str> = stored.iter().map(|d| d.sender.as_str()).collect();
    assert_eq!(senders, ["deals@shop.example.com"]);
    let view = world
        .quietbox
        .sender("DEALS@shop.example.com")
        .await
        .unwrap();
    assert_eq!(
        view.decision.map(|d| d.sender).as_deref(),
        Some("deals@shop.example.com")
    );
}
