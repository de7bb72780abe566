//! Calendar from an `.ics` file: events (recurring ones expanded with `rrule`), all-day events
//! placed in the asked time zone, transparent and cancelled events ignored.
//!
//! A recurrence is expanded from the window, not from its first instance: the series start is
//! moved forward by whole periods of the rule (its `FREQ` times its `INTERVAL`) to just before
//! the window, with the rule's implied parts (day of month, weekday, time) fixed from the real
//! start, so the instances in the window are the same and a daily series begun in 1990 costs
//! the same as one begun yesterday. A rule with `COUNT` cannot be moved (the count runs from the
//! first instance): it is walked from its start for at most [`COUNT_WALK_LIMIT`] instances, and
//! past that treated as unending (busy rather than wrongly free).

use std::path::PathBuf;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{
    DateTime, Datelike, Duration, Months, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc,
};
use chrono_tz::Tz;
use icalendar::{CalendarComponent, CalendarDateTime, Component, DatePerhapsTime};
use quietbox_core::ports::{BusyInterval, CalendarProvider, ProviderError};

/// A calendar read from an `.ics` file on every query (it is small, and may change).
#[derive(Debug, Clone)]
pub struct LocalCalendar {
    path: PathBuf,
}

impl LocalCalendar {
    /// The calendar at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LocalCalendar { path: path.into() }
    }
}

#[async_trait]
impl CalendarProvider for LocalCalendar {
    async fn busy(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        tz: &str,
    ) -> Result<Vec<BusyInterval>, ProviderError> {
        let tz = Tz::from_str(tz)
            .map_err(|_| ProviderError::InvalidInput(format!("unknown time zone {tz:?}")))?;
        let text = tokio::fs::read_to_string(&self.path).await.map_err(|e| {
            ProviderError::BadData(format!("cannot read calendar {}: {e}", self.path.display()))
        })?;
        busy_from_ics(&text, start, end, tz)
    }
}

/// Busy intervals of an iCalendar text overlapping `[start, end)`.
pub fn busy_from_ics(
    text: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    tz: Tz,
) -> Result<Vec<BusyInterval>, ProviderError> {
    if !text.trim_start().starts_with("BEGIN:VCALENDAR") {
        return Err(ProviderError::BadData(
            "calendar does not start with BEGIN:VCALENDAR".into(),
        ));
    }
    let unfolded = icalendar::parser::unfold(text);
    let calendar = icalendar::parser::read_calendar(&unfolded)
        .map_err(|e| ProviderError::BadData(format!("calendar does not parse: {e}")))?;
    let mut busy = Vec::new();
    for component in calendar.components {
        let component = CalendarComponent::from(component);
        let Some(event) = component.as_event() else {
            continue;
        };
        if event
            .property_value("TRANSP")
            .is_some_and(|t| t.eq_ignore_ascii_case("TRANSPARENT"))
            || event
                .property_value("STATUS")
                .is_some_and(|s| s.eq_ignore_ascii_case("CANCELLED"))
        {
            continue;
        }
        let Some(first_start) = event.get_start().and_then(|d| instant(&d, tz)) else {
            continue;
        };
        let first_end = event
            .get_end()
            .and_then(|d| instant(&d, tz))
            .or_else(|| match event.get_start() {
                // An all-day event without DTEND lasts one day (RFC 5545 §3.6.1).
                Some(DatePerhapsTime::Date(_)) => first_start.checked_add_signed(Duration::days(1)),
                _ => Some(first_start),
            })
            .unwrap_or(first_start);
        let length = first_end
            .signed_duration_since(first_start)
            .max(Duration::zero());
        let starts = match event.property_value("RRULE") {
            Some(rule) => {
                let from = start
                    .checked_sub_signed(length)
                    .unwrap_or(DateTime::<Utc>::MIN_UTC);
                occurrences(event, rule, tz, from, end)?.starts
            }
            None => vec![first_start],
        };
        for occurrence in starts {
            let interval = BusyInterval {
                start: occurrence,
                end: occurrence
                    .checked_add_signed(length)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC),
            };
            if interval.end > start && interval.start < end {
                busy.push(interval);
            }
        }
    }
    Ok(busy)
}

fn instant(value: &DatePerhapsTime, tz: Tz) -> Option<DateTime<Utc>> {
    match value {
        DatePerhapsTime::Date(date) => local_midnight(*date, tz),
        DatePerhapsTime::DateTime(CalendarDateTime::Utc(t)) => Some(*t),
        DatePerhapsTime::DateTime(CalendarDateTime::Floating(naive)) => local(naive, tz),
        DatePerhapsTime::DateTime(CalendarDateTime::WithTimezone { date_time, tzid }) => {
            local(date_time, Tz::from_str(tzid).unwrap_or(tz))
        }
    }
}

fn local(naive: &NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

fn local_midnight(date: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    local(&date.and_hms_opt(0, 0, 0)?, tz)
}

/// Most instances of one event kept for one window.
const MAX_INSTANCES: usize = 1000;
/// Most instances of a rule with `COUNT` walked from its start before it is treated as unending.
pub const COUNT_WALK_LIMIT: usize = 20_000;
/// Most instances examined for one event whatever the rule (a rule whose start cannot be moved
/// near the window, e.g. one made only of rare dates, stops here).
const WALK_LIMIT: usize = 100_000;

/// The instances of a recurring event in a window, and how many the expansion examined.
#[derive(Debug, Default)]
struct Expansion {
    /// Starts in `[from, to]`, in order.
    starts: Vec<DateTime<Utc>>,
    /// Instances generated, in the window or not: the work done.
    examined: usize,
    /// Whether the walk passed `to` or the series ended (not stopped by a limit).
    complete: bool,
}

/// Starts of a recurring event between `from` and `to` (at most [`MAX_INSTANCES`]).
fn occurrences(
    event: &icalendar::Event,
    rule: &str,
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Expansion, ProviderError> {
    let dtstart = match event.get_start() {
        Some(DatePerhapsTime::DateTime(CalendarDateTime::Utc(t))) => {
            format!("DTSTART:{}", t.format("%Y%m%dT%H%M%SZ"))
        }
        Some(DatePerhapsTime::DateTime(CalendarDateTime::WithTimezone { date_time, tzid })) => {
            let zone = Tz::from_str(&tzid).unwrap_or(tz);
            format!(
                "DTSTART;TZID={}:{}",
                zone.name(),
                date_time.format("%Y%m%dT%H%M%S")
            )
        }
        Some(DatePerhapsTime::DateTime(CalendarDateTime::Floating(naive))) => {
            format!(
                "DTSTART;TZID={}:{}",
                tz.name(),
                naive.format("%Y%m%dT%H%M%S")
            )
        }
        Some(DatePerhapsTime::Date(date)) => format!(
            "DTSTART;TZID={}:{}T000000",
            tz.name(),
            date.format("%Y%m%d")
        ),
        None => return Ok(Expansion::default()),
    };
    let exdate = event.property_value("EXDATE");
    let parse = |rule: &str| {
        let mut text = format!("{dtstart}\nRRULE:{rule}");
        if let Some(exdate) = exdate {
            text.push_str(&format!("\nEXDATE:{exdate}"));
        }
        // A rule we cannot read is skipped, not fatal: one odd event must not hide the calendar.
        rrule::RRuleSet::from_str(&text).ok()
    };
    let Some(set) = parse(rule) else {
        return Ok(Expansion::default());
    };
    if set.get_rrule().iter().all(|r| r.get_count().is_none()) {
        return Ok(walk(&rebase(set, from), from, to, WALK_LIMIT));
    }
    let counted = walk(&set, from, to, COUNT_WALK_LIMIT);
    if counted.complete {
        return Ok(counted);
    }
    tracing::warn!(
        uid = event.get_uid().unwrap_or_default(),
        limit = COUNT_WALK_LIMIT,
        "recurring event has more instances before the window than are walked: its COUNT is ignored"
    );
    let uncounted: Vec<&str> = rule
        .split(';')
        .filter(|part| !part.trim().to_ascii_uppercase().starts_with("COUNT="))
        .collect();
    match parse(&uncounted.join(";")) {
        Some(set) => Ok(walk(&rebase(set, from), from, to, WALK_LIMIT)),
        None => Ok(counted),
    }
}

/// The instances of `set` in `[from, to]`, examining at most `limit` instances.
fn walk(set: &rrule::RRuleSet, from: DateTime<Utc>, to: DateTime<Utc>, limit: usize) -> Expansion {
    let set = set.clone().limit();
    let mut expansion = Expansion::default();
    for instance in &set {
        if expansion.examined >= limit {
            return expansion;
        }
        expansion.examined += 1;
        let instance = instance.with_timezone(&Utc);
        if instance > to {
            expansion.complete = true;
            return expansion;
        }
        if instance >= from {
            expansion.starts.push(instance);
            if expansion.starts.len() >= MAX_INSTANCES {
                expansion.complete = true;
                return expansion;
            }
        }
    }
    expansion.complete = true;
    expansion
}

/// `set` (one rule, no `COUNT`) with its start moved forward by whole periods of the rule to at
/// most `from`, so that expanding it yields the same instances from `from` on. The rule as
/// parsed already holds the parts its start implied (BYMONTHDAY, BYMONTH, BYDAY, BYHOUR, …),
/// so a start moved to the first day of a month or year still yields the right days, and
/// instances dropped because they fall before the new start are all before `from`. When no
/// such start exists (an instant in a DST gap, the window before the series), `set` is
/// returned unchanged.
fn rebase(set: rrule::RRuleSet, from: DateTime<Utc>) -> rrule::RRuleSet {
    let [rule] = set.get_rrule().as_slice() else {
        return set;
    };
    if rule.get_count().is_some() {
        return set;
    }
    let start = *set.get_dt_start();
    let zone = start.timezone();
    let utc = from.naive_utc();
    let Some(target) = utc.checked_add_offset(zone.offset_from_utc_datetime(&utc).fix()) else {
        return set;
    };
    // Local wall-clock order may differ from instant order by a DST shift (a few hours).
    let Some(target) = target.checked_sub_signed(Duration::hours(3)) else {
        return set;
    };
    let origin = start.naive_local();
    if target <= origin {
        return set;
    }
    let interval = i64::from(rule.get_interval().max(1));
    let candidates: Vec<NaiveDateTime> = (0..4)
        .filter_map(|back| moved_start(rule.get_freq(), interval, origin, target, back))
        .collect();
    for candidate in candidates {
        if candidate <= origin {
            break;
        }
        if let Some(moved) = zone.from_local_datetime(&candidate).earliest() {
            return rrule::RRuleSet::new(moved)
                .rrule(rule.clone())
                .set_exdates(set.get_exdate().clone());
        }
    }
    set
}

/// The latest start at most `target` that is a whole number of periods (`interval` times the
/// frequency) after `origin`, less `back` further periods: for sub-monthly rules `origin` moved
/// by those periods, for monthly and yearly rules the first day of the period at midnight.
fn moved_start(
    freq: rrule::Frequency,
    interval: i64,
    origin: NaiveDateTime,
    target: NaiveDateTime,
    back: i64,
) -> Option<NaiveDateTime> {
    use rrule::Frequency;
    let unit: Option<i64> = match freq {
        Frequency::Secondly => Some(1),
        Frequency::Minutely => Some(60),
        Frequency::Hourly => Some(3_600),
        Frequency::Daily => Some(86_400),
        Frequency::Weekly => Some(7 * 86_400),
        Frequency::Monthly | Frequency::Yearly => None,
    };
    if let Some(unit) = unit {
        let period = unit.checked_mul(interval)?;
        let span = target.signed_duration_since(origin).num_seconds();
        let periods = (span / period).checked_sub(back)?;
        return origin.checked_add_signed(Duration::try_seconds(periods.checked_mul(period)?)?);
    }
    let months_per_period = if freq == Frequency::Yearly {
        12 * interval
    } else {
        interval
    };
    let month_index = |t: NaiveDateTime| i64::from(t.year()) * 12 + i64::from(t.month0());
    let months = month_index(target) - month_index(origin);
    let periods = (months / months_per_period).checked_sub(back)?;
    let first = if freq == Frequency::Yearly {
        NaiveDate::from_ymd_opt(origin.year(), 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(origin.year(), origin.month(), 1)?
    };
    let shift = u32::try_from(periods.checked_mul(months_per_period)?).ok()?;
    first
        .checked_add_months(Months::new(shift))?
        .and_hms_opt(0, 0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;

    const ICS: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//quietbox//test//EN\r\n\
BEGIN:VEVENT\r\nUID:1\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\nSUMMARY:One-off\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:2\r\nDTSTART;TZID=Europe/Paris:20260105T140000\r\nDTEND;TZID=Europe/Paris:20260105T143000\r\nRRULE:FREQ=DAILY;COUNT=3\r\nSUMMARY:Standup\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:3\r\nDTSTART;VALUE=DATE:20260107\r\nDTEND;VALUE=DATE:20260108\r\nSUMMARY:Holiday\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:4\r\nDTSTART:20260105T150000Z\r\nDTEND:20260105T160000Z\r\nTRANSP:TRANSPARENT\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

    fn utc(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, d, h, m, 0).unwrap()
    }

    #[test]
    fn events_recurrences_and_all_day_events_are_busy() {
        let mut busy =
            busy_from_ics(ICS, utc(5, 0, 0), utc(9, 0, 0), chrono_tz::Europe::Paris).unwrap();
        busy.sort();
        let expected = vec![
            BusyInterval {
                start: utc(5, 10, 0),
                end: utc(5, 11, 0),
            },
            BusyInterval {
                start: utc(5, 13, 0),
                end: utc(5, 13, 30),
            },
            BusyInterval {
                start: utc(6, 13, 0),
                end: utc(6, 13, 30),
            },
            // All-day on the 7th in Paris: 23:00 UTC on the 6th to 23:00 UTC on the 7th.
            BusyInterval {
                start: utc(6, 23, 0),
                end: utc(7, 23, 0),
            },
            BusyInterval {
                start: utc(7, 13, 0),
                end: utc(7, 13, 30),
            },
        ];
        assert_eq!(busy, expected);
    }

    #[test]
    fn a_file_that_is_not_a_calendar_is_a_clear_error() {
        let err = busy_from_ics(
            "<html>oops</html>",
            utc(5, 0, 0),
            utc(6, 0, 0),
            chrono_tz::UTC,
        )
        .unwrap_err();
        assert!(err.to_string().contains("BEGIN:VCALENDAR"), "{err}");
    }

    fn set(text: &str) -> rrule::RRuleSet {
        rrule::RRuleSet::from_str(text).unwrap()
    }

    fn at(y: i32, mo: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, 0, 0, 0).unwrap()
    }

    #[test]
    fn a_daily_series_begun_in_1990_has_the_right_instances_in_2026() {
        let ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//quietbox//test//EN\r\n\
BEGIN:VEVENT\r\nUID:old\r\nDTSTART;TZID=Europe/Paris:19900101T093000\r\n\
DTEND;TZID=Europe/Paris:19900101T100000\r\nRRULE:FREQ=DAILY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let paris = chrono_tz::Europe::Paris;
        // Across the 2026-03-29 DST switch: 09:30 local is 08:30 UTC, then 07:30 UTC.
        let (from, to) = (at(2026, 3, 27), at(2026, 3, 31));
        let mut busy = busy_from_ics(ics, from, to, paris).unwrap();
        busy.sort();
        let expected: Vec<BusyInterval> = (27..=30)
            .map(|day| {
                let local = NaiveDate::from_ymd_opt(2026, 3, day)
                    .unwrap()
                    .and_hms_opt(9, 30, 0)
                    .unwrap();
                let start = paris.from_local_datetime(&local).single().unwrap().to_utc();
                BusyInterval {
                    start,
                    end: start + Duration::minutes(30),
                }
            })
            .collect();
        assert_eq!(busy, expected);
        assert_eq!(
            expected[0].start,
            Utc.with_ymd_and_hms(2026, 3, 27, 8, 30, 0).unwrap()
        );
        assert_eq!(
            expected[3].start,
            Utc.with_ymd_and_hms(2026, 3, 30, 7, 30, 0).unwrap()
        );
    }

    #[test]
    fn a_series_is_expanded_from_the_window_not_from_its_start() {
        // From 1990 the whole series is 19 million instances before 2026; expanded from the
        // window it is the window's 48 and a few before it.
        let series =
            set("DTSTART;TZID=Europe/Paris:19900101T093000\nRRULE:FREQ=MINUTELY;INTERVAL=30");
        let (from, to) = (at(2026, 3, 29), at(2026, 3, 30));
        let expansion = walk(&rebase(series, from), from, to, usize::MAX);
        // (rrule places the two local times of the DST gap an hour later: duplicates.)
        let mut starts = expansion.starts.clone();
        starts.sort();
        starts.dedup();
        let every_half_hour: Vec<DateTime<Utc>> =
            (0..=48).map(|i| from + Duration::minutes(30 * i)).collect();
        assert_eq!(starts, every_half_hour);
        assert!(expansion.examined < 100, "examined {}", expansion.examined);
        let daily = set("DTSTART:19900101T093000Z\nRRULE:FREQ=DAILY");
        let expansion = walk(&rebase(daily, from), from, to, usize::MAX);
        assert_eq!(
            expansion.starts,
            vec![Utc.with_ymd_and_hms(2026, 3, 29, 9, 30, 0).unwrap()]
        );
        assert!(expansion.examined <= 3, "examined {}", expansion.examined);
    }

    #[test]
    fn expansion_from_the_window_matches_the_full_expansion() {
        let series = [
            ("DTSTART:19900101T093000Z", "FREQ=DAILY;INTERVAL=3"),
            (
                "DTSTART;TZID=Europe/Paris:19900103T083000",
                "FREQ=WEEKLY;BYDAY=MO,WE,FR",
            ),
            (
                "DTSTART;TZID=America/New_York:19951004T170000",
                "FREQ=WEEKLY;INTERVAL=2;WKST=SU;BYDAY=TU,SA",
            ),
            ("DTSTART;TZID=Europe/Paris:19900131T120000", "FREQ=MONTHLY"),
            ("DTSTART:19910315T140000Z", "FREQ=MONTHLY;BYDAY=-1FR"),
            (
                "DTSTART;TZID=Asia/Tokyo:19930115T090000",
                "FREQ=MONTHLY;INTERVAL=5;BYMONTHDAY=15,-1",
            ),
            (
                "DTSTART:19900101T160000Z",
                "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
            ),
            ("DTSTART;TZID=Europe/London:19920229T100000", "FREQ=YEARLY"),
            (
                "DTSTART:19900325T010000Z",
                "FREQ=YEARLY;INTERVAL=3;BYMONTH=3,10;BYDAY=-1SU",
            ),
            (
                "DTSTART:19900514T090000Z",
                "FREQ=YEARLY;BYWEEKNO=20,44;BYDAY=MO",
            ),
            ("DTSTART;TZID=Europe/Paris:19900101T023000", "FREQ=DAILY"),
            (
                "DTSTART;TZID=Europe/Paris:20000101T000000",
                "FREQ=HOURLY;INTERVAL=7;BYHOUR=1,2,3,9,10,11",
            ),
            (
                "DTSTART;TZID=Europe/Paris:20250601T001500",
                "FREQ=MINUTELY;INTERVAL=45",
            ),
            (
                "DTSTART:19900104T120000Z",
                "FREQ=DAILY;BYMONTH=3,10;BYDAY=SU",
            ),
            (
                "DTSTART:19900101T120000Z",
                "FREQ=DAILY;UNTIL=20260330T000000Z",
            ),
            (
                "DTSTART:19900101T120000Z",
                "FREQ=WEEKLY;UNTIL=20261101T000000Z",
            ),
        ];
        let windows = [
            (at(2026, 3, 25), at(2026, 4, 6)),
            (at(2026, 10, 20), at(2026, 11, 6)),
            (at(2028, 2, 20), at(2028, 3, 11)),
        ];
        for (start, rule) in series {
            let full = set(&format!("{start}\nRRULE:{rule}\nEXDATE:20260327T120000Z"));
            let found: usize = windows
                .iter()
                .map(|(from, to)| walk(&full, *from, *to, usize::MAX).starts.len())
                .sum();
            assert!(found > 0, "{rule} has instances in some window");
            for (from, to) in windows {
                let expected = walk(&full, from, to, usize::MAX);
                let moved = walk(&rebase(full.clone(), from), from, to, usize::MAX);
                assert!(expected.complete && moved.complete, "{rule}");
                assert_eq!(moved.starts, expected.starts, "{start} {rule} {from}..{to}");
                assert!(moved.examined <= expected.examined, "{rule}");
            }
        }
    }

    #[test]
    fn a_count_rule_is_counted_from_its_start_and_a_huge_count_does_not_hide_it() {
        let ics = |rule: &str| {
            format!(
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//quietbox//test//EN\r\n\
BEGIN:VEVENT\r\nUID:c\r\nDTSTART:20260320T120000Z\r\nDTEND:20260320T130000Z\r\nRRULE:{rule}\r\n\
END:VEVENT\r\nBEGIN:VEVENT\r\nUID:h\r\nDTSTART:19900101T150000Z\r\nDTEND:19900101T160000Z\r\n\
RRULE:FREQ=DAILY;COUNT=100000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
            )
        };
        let busy = busy_from_ics(
            &ics("FREQ=DAILY;COUNT=10"),
            at(2026, 3, 25),
            at(2026, 4, 2),
            chrono_tz::UTC,
        )
        .unwrap();
        let counted: Vec<u32> = busy
            .iter()
            .filter(|b| b.start.hour() == 12)
            .map(|b| b.start.day())
            .collect();
        assert_eq!(counted, vec![25, 26, 27, 28, 29]);
        // 100,000 days from 1990 run to 2263: every day of the window has the 15:00 instance.
        let later = busy.iter().filter(|b| b.start.hour() == 15).count();
        assert_eq!(later, 8);
    }
}
