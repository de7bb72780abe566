//! The local calendar on the bugs of issue 20, one test each, on the edge-case calendars of
//! `tests/ics/cases/` (which the differential test also compares with the reference).

use chrono::{DateTime, Duration, TimeZone, Utc};
use quietbox_core::ports::{BusyInterval, CalendarProvider};
use quietbox_gmail::local::{LocalCalendar, busy_from_ics};

fn case(name: &str) -> String {
    format!(
        "{}/../../tests/ics/cases/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn iv(start: DateTime<Utc>, minutes: i64) -> BusyInterval {
    BusyInterval {
        start,
        end: start + Duration::minutes(minutes),
    }
}

async fn busy(name: &str, from: DateTime<Utc>, to: DateTime<Utc>, tz: &str) -> Vec<BusyInterval> {
    LocalCalendar::new(case(name))
        .busy(from, to, tz)
        .await
        .unwrap()
}

#[tokio::test]
async fn exdate_with_tzid_utc_and_value_date_removes_instances() {
    let busy = busy(
        "exdate_tzid_and_date.ics",
        t(2026, 3, 23, 0, 0),
        t(2026, 4, 3, 0, 0),
        "Europe/Berlin",
    )
    .await;
    let timed: Vec<u32> = busy
        .iter()
        .filter(|b| b.end - b.start == Duration::hours(1))
        .map(|b| chrono::Datelike::day(&b.start))
        .collect();
    assert_eq!(timed, vec![23, 27, 28, 29, 30, 31, 1], "{busy:?}");
    // The all-day weekly series: 23 March, not 30 March (EXDATE;VALUE=DATE), 6 April is past.
    let days = busy
        .iter()
        .filter(|b| b.end - b.start >= Duration::hours(23))
        .count();
    assert_eq!(days, 1, "{busy:?}");
}

#[tokio::test]
async fn a_moved_instance_is_busy_at_its_new_time_and_a_cancelled_one_is_free() {
    let busy = busy(
        "recurrence_id_moved_and_cancelled.ics",
        t(2026, 3, 25, 0, 0),
        t(2026, 3, 28, 12, 0),
        "America/New_York",
    )
    .await;
    // 14:00 EDT is 18:00 UTC; the 25th moved to 17:00 EDT, the 27th cancelled.
    assert_eq!(
        busy,
        vec![iv(t(2026, 3, 25, 21, 0), 60), iv(t(2026, 3, 26, 18, 0), 60)]
    );
}

#[tokio::test]
async fn range_thisandfuture_moves_every_later_instance() {
    let busy = busy(
        "this_and_future.ics",
        t(2026, 3, 27, 0, 0),
        t(2026, 3, 30, 0, 0),
        "UTC",
    )
    .await;
    assert_eq!(
        busy,
        vec![
            iv(t(2026, 3, 27, 10, 0), 60),
            iv(t(2026, 3, 28, 13, 0), 60),
            iv(t(2026, 3, 29, 13, 0), 60)
        ]
    );
}

#[tokio::test]
async fn a_series_whose_until_has_no_z_keeps_its_instances() {
    let busy = busy(
        "until_without_z.ics",
        t(2026, 3, 19, 0, 0),
        t(2026, 4, 10, 0, 0),
        "Europe/Berlin",
    )
    .await;
    let timed = busy
        .iter()
        .filter(|b| b.end - b.start == Duration::minutes(30))
        .count();
    assert_eq!(timed, 14, "20 March to 2 April inclusive: {busy:?}");
    let days = busy
        .iter()
        .filter(|b| b.end - b.start >= Duration::hours(23))
        .count();
    assert_eq!(days, 3, "21 and 28 March, 4 April: {busy:?}");
}

#[tokio::test]
async fn duration_rdate_periods_and_several_rrules_are_all_busy() {
    let busy = busy(
        "duration_rdate_multiple_rrule.ics",
        t(2026, 3, 23, 0, 0),
        t(2026, 4, 4, 0, 0),
        "UTC",
    )
    .await;
    let expected = vec![
        iv(t(2026, 3, 23, 15, 0), 45),
        iv(t(2026, 3, 26, 15, 0), 45),
        iv(t(2026, 3, 27, 0, 0), 2 * 24 * 60),
        iv(t(2026, 3, 30, 15, 0), 45),
        iv(t(2026, 4, 1, 7, 0), 45),
        iv(t(2026, 4, 2, 7, 0), 45),
        iv(t(2026, 4, 2, 15, 0), 45),
        iv(t(2026, 4, 3, 12, 0), 180),
    ];
    assert_eq!(busy, expected);
}

#[tokio::test]
async fn windows_zone_names_and_x_wr_timezone_are_read() {
    let busy = busy(
        "windows_tzid_and_x_wr_timezone.ics",
        t(2026, 3, 23, 0, 0),
        t(2026, 3, 28, 0, 0),
        "Asia/Tokyo",
    )
    .await;
    let expected = vec![
        // 09:00 "W. Europe Standard Time" (CET) on 23 March.
        iv(t(2026, 3, 23, 8, 0), 60),
        // Floating 12:00 read in X-WR-TIMEZONE America/New_York (EDT), not in the asked Tokyo.
        iv(t(2026, 3, 24, 16, 0), 60),
        // A UTC weekly series begun in EST keeps its New York wall time (10:00) after DST.
        iv(t(2026, 3, 27, 14, 0), 60),
    ];
    assert_eq!(busy, expected);
}

#[tokio::test]
async fn a_custom_vtimezone_is_read_from_its_rules() {
    let busy = busy(
        "custom_vtimezone.ics",
        t(2026, 10, 30, 0, 0),
        t(2026, 11, 3, 0, 0),
        "UTC",
    )
    .await;
    // US rules: EDT until 1 November, EST after.
    assert_eq!(
        busy,
        vec![
            iv(t(2026, 10, 30, 13, 0), 60),
            iv(t(2026, 10, 31, 13, 0), 60),
            iv(t(2026, 11, 1, 14, 0), 60),
            iv(t(2026, 11, 2, 14, 0), 60)
        ]
    );
}

#[tokio::test]
async fn dst_gaps_overlaps_all_day_and_a_non_whole_hour_zone() {
    let spring = busy(
        "dst_gap_overlap_all_day.ics",
        t(2026, 3, 28, 0, 0),
        t(2026, 3, 31, 0, 0),
        "Europe/Berlin",
    )
    .await;
    // 02:30 Berlin: 01:30 UTC; on 29 March 02:30 does not exist and is 03:30 CEST (01:30 UTC).
    for start in [
        t(2026, 3, 28, 1, 30),
        t(2026, 3, 29, 1, 30),
        t(2026, 3, 30, 0, 30),
    ] {
        assert!(spring.contains(&iv(start, 60)), "{start} in {spring:?}");
    }
    // The all-day event of 29 March (23 h long in Berlin) is its own interval in a busy day:
    // ask about it alone, in a window that cuts off the 28th and 30th.
    let day = busy(
        "dst_gap_overlap_all_day.ics",
        t(2026, 3, 29, 2, 0),
        t(2026, 3, 29, 21, 59),
        "Europe/Berlin",
    )
    .await;
    assert_eq!(
        day.iter()
            .filter(|b| b.start == t(2026, 3, 28, 23, 0) && b.end == t(2026, 3, 29, 22, 0))
            .count(),
        1,
        "{day:?}"
    );
    let autumn = busy(
        "dst_gap_overlap_all_day.ics",
        t(2026, 10, 31, 0, 0),
        t(2026, 11, 3, 0, 0),
        "America/New_York",
    )
    .await;
    // 01:30 New York on 1 November happens twice: it is the first (EDT, 05:30 UTC); its end,
    // 02:00, comes once, after the repeated hour (EST, 07:00 UTC).
    assert!(
        autumn.contains(&iv(t(2026, 11, 1, 5, 30), 90)),
        "{autumn:?}"
    );
    let kathmandu = busy(
        "dst_gap_overlap_all_day.ics",
        t(2026, 3, 23, 0, 0),
        t(2026, 3, 24, 0, 0),
        "Asia/Kolkata",
    )
    .await;
    assert!(
        kathmandu.contains(&iv(t(2026, 3, 23, 3, 30), 30)),
        "+05:45: {kathmandu:?}"
    );
}

#[tokio::test]
async fn an_hourly_series_has_every_instance_past_a_thousand() {
    let busy = busy(
        "hourly_over_1000.ics",
        t(2026, 3, 1, 0, 0),
        t(2026, 4, 30, 0, 0),
        "UTC",
    )
    .await;
    assert_eq!(busy.len(), 60 * 24);
}

#[tokio::test]
async fn a_bom_several_vcalendars_and_bad_lines_do_not_refuse_the_file() {
    let busy = busy(
        "bom_two_calendars_bad_line.ics",
        t(2026, 3, 24, 0, 0),
        t(2026, 3, 26, 0, 0),
        "UTC",
    )
    .await;
    assert_eq!(
        busy,
        vec![iv(t(2026, 3, 24, 10, 0), 60), iv(t(2026, 3, 25, 10, 0), 60)]
    );
}

#[tokio::test]
async fn transparent_and_cancelled_events_are_free() {
    let busy = busy(
        "transparent_cancelled.ics",
        t(2026, 3, 24, 0, 0),
        t(2026, 3, 25, 0, 0),
        "UTC",
    )
    .await;
    assert_eq!(busy, vec![iv(t(2026, 3, 24, 14, 0), 60)]);
}

#[tokio::test]
async fn a_file_that_is_not_a_calendar_is_refused_naming_the_calendar_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed.ics");
    std::fs::write(&path, "\n<html>\n<body>sign in</body>\n").unwrap();
    let err = LocalCalendar::new(&path)
        .busy(t(2026, 3, 24, 0, 0), t(2026, 3, 25, 0, 0), "UTC")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("calendar") && err.contains("feed.ics") && err.contains("line 2"),
        "{err}"
    );
    assert!(
        !err.contains("Many0") && !err.contains("Tag"),
        "no parser trace: {err}"
    );
}

#[tokio::test]
async fn local_ics_lists_several_files() {
    let both = format!(
        "{}, {}",
        case("transparent_cancelled.ics"),
        case("bom_two_calendars_bad_line.ics")
    );
    let calendar = LocalCalendar::new(both);
    assert_eq!(calendar.paths().len(), 2);
    let busy = calendar
        .busy(t(2026, 3, 24, 0, 0), t(2026, 3, 26, 0, 0), "UTC")
        .await
        .unwrap();
    assert_eq!(
        busy,
        vec![
            iv(t(2026, 3, 24, 10, 0), 60),
            iv(t(2026, 3, 24, 14, 0), 60),
            iv(t(2026, 3, 25, 10, 0), 60)
        ]
    );
}

#[tokio::test]
async fn a_file_is_parsed_once_per_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cal.ics");
    let text = std::fs::read_to_string(case("transparent_cancelled.ics")).unwrap();
    std::fs::write(&path, &text).unwrap();
    let calendar = LocalCalendar::new(&path);
    let window = (t(2026, 3, 24, 0, 0), t(2026, 3, 25, 0, 0));
    let first = calendar.busy(window.0, window.1, "UTC").await.unwrap();
    assert_eq!(first.len(), 1);
    // Same size and modification time: the parsed copy is served, the text is not read again.
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::write(
        &path,
        text.replace(
            "DTSTART:20260324T140000Z\r\nDTEND:20260324T150000Z",
            "DTSTART:20260324T150000Z\r\nDTEND:20260324T160000Z",
        ),
    )
    .unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    assert_eq!(
        calendar.busy(window.0, window.1, "UTC").await.unwrap(),
        first
    );
    // A new version is read.
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(modified + std::time::Duration::from_secs(5))
        .unwrap();
    let second = calendar.busy(window.0, window.1, "UTC").await.unwrap();
    assert_eq!(second, vec![iv(t(2026, 3, 24, 15, 0), 60)]);
}

#[test]
fn busy_from_ics_reads_text() {
    let text = std::fs::read_to_string(case("transparent_cancelled.ics")).unwrap();
    let busy = busy_from_ics(
        &text,
        t(2026, 3, 24, 0, 0),
        t(2026, 3, 25, 0, 0),
        chrono_tz::UTC,
    )
    .unwrap();
    assert_eq!(busy, vec![iv(t(2026, 3, 24, 14, 0), 60)]);
}
