//! Availability over a 5,000-event calendar, warm (the file parsed once, as `LocalCalendar`
//! keeps it): the median per query of a one-week window. Goal: ≤ 2 ms in release.
//!
//! Run with: `cargo bench -p quietbox-gmail --bench availability`. The calendar is written to
//! `target/bench/calendar-5000.ics` (or `QB_BENCH_ICS`), for the Python reference
//! (`tests/ics/bench_reference.py`) to compute the same window.

use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use quietbox_core::ports::CalendarProvider;
use quietbox_gmail::local::{LocalCalendar, ParsedCalendar};

/// 5,000 events like a busy work calendar's: 4,000 one-off meetings over three years, 600
/// weekly series with EXDATEs and a moved instance, 300 daily series (some with UNTIL or COUNT),
/// 100 all-day events; Berlin and New York times, a few transparent or cancelled.
fn calendar() -> String {
    let mut text =
        String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//quietbox//bench//EN\r\n");
    let zones = ["Europe/Berlin", "America/New_York"];
    for i in 0..5000u32 {
        let zone = zones[(i % 2) as usize];
        let day = 1 + (i * 7919) % 1095; // spread over 2025..2027
        let date = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap()
            + chrono::Duration::days(i64::from(day));
        let hour = 8 + (i % 10);
        let start = format!("{}T{hour:02}{:02}00", date.format("%Y%m%d"), (i % 4) * 15);
        let end = format!(
            "{}T{hour:02}{:02}00",
            date.format("%Y%m%d"),
            (i % 4) * 15 + 10
        );
        let _ = write!(text, "BEGIN:VEVENT\r\nUID:bench-{i}\r\n");
        match i {
            0..4000 => {
                let _ = write!(
                    text,
                    "DTSTART;TZID={zone}:{start}\r\nDTEND;TZID={zone}:{end}\r\n"
                );
                if i % 50 == 0 {
                    text.push_str("TRANSP:TRANSPARENT\r\n");
                }
                if i % 70 == 0 {
                    text.push_str("STATUS:CANCELLED\r\n");
                }
            }
            4000..4600 => {
                let _ = write!(
                    text,
                    "DTSTART;TZID={zone}:{start}\r\nDTEND;TZID={zone}:{end}\r\nRRULE:FREQ=WEEKLY;BYDAY=MO,WE\r\nEXDATE;TZID={zone}:{start}\r\n"
                );
            }
            4600..4900 => {
                let rule = match i % 3 {
                    0 => "FREQ=DAILY;UNTIL=20271231T000000Z".to_owned(),
                    1 => "FREQ=DAILY;COUNT=400".to_owned(),
                    _ => "FREQ=DAILY;INTERVAL=2".to_owned(),
                };
                let _ = write!(
                    text,
                    "DTSTART;TZID={zone}:{start}\r\nDTEND;TZID={zone}:{end}\r\nRRULE:{rule}\r\n"
                );
            }
            _ => {
                let next = date + chrono::Duration::days(1);
                let _ = write!(
                    text,
                    "DTSTART;VALUE=DATE:{}\r\nDTEND;VALUE=DATE:{}\r\n",
                    date.format("%Y%m%d"),
                    next.format("%Y%m%d")
                );
            }
        }
        text.push_str("END:VEVENT\r\n");
        if (4000..4600).contains(&i) && i % 10 == 0 {
            let _ = write!(
                text,
                "BEGIN:VEVENT\r\nUID:bench-{i}\r\nRECURRENCE-ID;TZID={zone}:{start}\r\nDTSTART;TZID={zone}:{end}\r\nDURATION:PT30M\r\nEND:VEVENT\r\n"
            );
        }
    }
    text.push_str("END:VCALENDAR\r\n");
    text
}

fn availability(c: &mut Criterion) {
    let text = calendar();
    let path = std::env::var_os("QB_BENCH_ICS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench/calendar-5000.ics")
        });
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(&path, &text).unwrap();
    let (from, to) = (
        Utc.with_ymd_and_hms(2026, 3, 23, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 3, 30, 0, 0, 0).unwrap(),
    );
    let parsed = ParsedCalendar::parse(&text).unwrap();
    let mut group = c.benchmark_group("ics_5000");
    group.bench_function("parse", |b| {
        b.iter(|| ParsedCalendar::parse(&text).unwrap())
    });
    group.bench_function("week_query_parsed", |b| {
        b.iter(|| parsed.busy(from, to, chrono_tz::Europe::Berlin))
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let calendar = LocalCalendar::new(&path);
    let busy = runtime
        .block_on(calendar.busy(from, to, "Europe/Berlin"))
        .unwrap();
    eprintln!("week 2026-03-23: {} busy intervals", busy.len());
    group.bench_function("week_query_warm", |b| {
        b.iter(|| {
            runtime
                .block_on(calendar.busy(from, to, "Europe/Berlin"))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, availability);
criterion_main!(benches);
