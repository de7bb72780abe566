//! Busy time of a parsed calendar in a window.
//!
//! A recurrence is expanded over wall-clock times (its DTSTART and UNTIL written as UTC), and
//! each instance is then placed in the series' zone (DST gaps and overlaps by RFC 5545
//! §3.3.5), so all-day and timed series keep their local time and length across DST.
//!
//! A recurrence is expanded from the window, not from its first instance: the series start is
//! moved forward by whole periods of the rule (its `FREQ` times its `INTERVAL`) to just before
//! the window, with the rule's implied parts (day of month, weekday, time) fixed from the real
//! start, so the instances in the window are the same and a daily series begun in 1990 costs
//! the same as one begun yesterday. A rule with `COUNT` cannot be moved (the count runs from the
//! first instance): it is walked from its start for at most [`COUNT_WALK_LIMIT`] instances, and
//! past that treated as unending (busy rather than wrongly free).

use chrono::{
    DateTime, Datelike, Duration, Months, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc,
};
use chrono_tz::Tz;
use quietbox_core::ports::BusyInterval;

use super::parse::{Calendar, Length, Rule, Series};

/// Most instances of a rule with `COUNT` walked from its start before it is treated as unending.
pub const COUNT_WALK_LIMIT: usize = 20_000;
/// Most instances examined for one rule in one window (a minutely series over a year is
/// 525,600): past it the walk stops with a warning.
const WALK_LIMIT: usize = 2_000_000;

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

/// Busy intervals of `calendar` overlapping `[start, end)`, floating times and dates read in
/// `asked`, appended to `out`. Zero-length instances are not busy.
pub(crate) fn busy(
    calendar: &Calendar,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    asked: Tz,
    out: &mut Vec<BusyInterval>,
) {
    // Any zone's offset is under a day: these wall-clock bounds hold every instance that can
    // touch the window.
    let lo = start.naive_utc() - Duration::days(1);
    let hi = end.naive_utc() + Duration::days(1);
    for series in &calendar.series {
        if series.first_wall > hi
            || series
                .last_wall
                .is_some_and(|last| last + series.longest < lo)
        {
            continue;
        }
        series_busy(series, lo, hi, start, end, asked, out);
    }
}

#[allow(clippy::too_many_arguments)]
fn series_busy(
    series: &Series,
    lo: NaiveDateTime,
    hi: NaiveDateTime,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    asked: Tz,
    out: &mut Vec<BusyInterval>,
) {
    let mut push = |from: DateTime<Utc>, to: DateTime<Utc>| {
        if to > from && to > start && from < end {
            out.push(BusyInterval {
                start: from,
                end: to,
            });
        }
    };
    for o in &series.overrides {
        if o.busy {
            let from = o.start.instant(asked);
            push(from, o.length.end(o.start.wall(), o.start.zone(), asked));
        }
    }
    let mut future: Vec<&super::parse::Override> = series
        .overrides
        .iter()
        .filter(|o| o.this_and_future)
        .collect();
    if !series.busy && future.iter().all(|o| !o.busy) {
        return;
    }
    future.sort_by_key(|o| o.rid);
    let zone = series.start.zone();
    let from = lo - series.longest;
    let mut walls: Vec<(NaiveDateTime, Option<Length>)> = Vec::new();
    let first = series.start.wall();
    if first >= from && first <= hi {
        walls.push((first, None));
    }
    for rule in &series.rules {
        for instance in occurrences(series, rule, from, hi) {
            walls.push((instance, None));
        }
    }
    for (wall, length) in &series.rdates {
        if *wall >= from && *wall <= hi {
            walls.push((*wall, *length));
        }
    }
    walls.sort_by_key(|(wall, length)| (*wall, length.is_none()));
    walls.dedup_by_key(|(wall, _)| *wall);
    for (wall, length) in walls {
        if series.exdates.contains(&wall)
            || series.exdays.contains(&wall.date())
            || series.overrides.iter().any(|o| o.rid == wall)
        {
            continue;
        }
        let mut busy = series.busy;
        let mut length = length.unwrap_or(series.length);
        let mut shift = Duration::zero();
        if let Some(o) = future.iter().rev().find(|o| o.rid < wall) {
            busy = o.busy;
            length = o.length;
            shift = o.start.instant(asked) - zone.instant(o.rid, asked);
        }
        if !busy {
            continue;
        }
        let from = zone.instant(wall, asked) + shift;
        push(from, length.end(wall, zone, asked) + shift);
    }
}

fn as_utc(wall: NaiveDateTime) -> DateTime<Utc> {
    Utc.from_utc_datetime(&wall)
}

/// Wall-clock starts of one rule of `series` between `from` and `to`.
fn occurrences(
    series: &Series,
    rule: &Rule,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Vec<NaiveDateTime> {
    let (from, to) = (as_utc(from), as_utc(to));
    let set = &rule.set;
    let expansion = if set.get_rrule().iter().all(|r| r.get_count().is_none()) {
        walk(&rebase(set.clone(), from), from, to, WALK_LIMIT)
    } else {
        let counted = walk(set, from, to, COUNT_WALK_LIMIT);
        if counted.complete {
            counted
        } else {
            tracing::warn!(
                uid = series.uid,
                limit = COUNT_WALK_LIMIT,
                "recurring event has more instances before the window than are walked: its COUNT is ignored"
            );
            let uncounted: Vec<&str> = rule
                .text
                .split(';')
                .filter(|part| !part.trim().to_ascii_uppercase().starts_with("COUNT="))
                .collect();
            match uncounted
                .join(";")
                .parse::<rrule::RRule<rrule::Unvalidated>>()
                .ok()
                .and_then(|r| r.build(*set.get_dt_start()).ok())
            {
                Some(set) => walk(&rebase(set, from), from, to, WALK_LIMIT),
                None => counted,
            }
        }
    };
    if !expansion.complete {
        tracing::warn!(
            uid = series.uid,
            limit = WALK_LIMIT,
            "recurring event has more instances in the window than are walked: the rest are missing"
        );
    }
    expansion.starts.iter().map(|t| t.naive_utc()).collect()
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
    use super::super::busy_from_ics;
    use super::*;
    use chrono::Timelike;
    use std::str::FromStr;

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
