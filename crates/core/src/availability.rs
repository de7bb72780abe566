//! Free slots: busy intervals merged, working hours laid out in the owner's time zone (so a DST
//! switch moves them in UTC, not in local time), and the gaps cut into slots.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::ports::BusyInterval;

/// Working hours: the same local hours on the listed weekdays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkingHours {
    /// Local start of the working day.
    pub start: NaiveTime,
    /// Local end of the working day.
    pub end: NaiveTime,
    /// Working weekdays.
    pub days: Vec<Weekday>,
}

impl Default for WorkingHours {
    /// 09:00–17:00, Monday to Friday.
    fn default() -> Self {
        WorkingHours {
            start: NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default(),
            end: NaiveTime::from_hms_opt(17, 0, 0).unwrap_or_default(),
            days: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
            ],
        }
    }
}

/// What free slots to find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailabilityQuery {
    /// Window start.
    pub start: DateTime<Utc>,
    /// Window end.
    pub end: DateTime<Utc>,
    /// Length of each slot.
    pub slot: Duration,
    /// Working hours, in `tz`.
    pub hours: WorkingHours,
    /// The owner's time zone.
    pub tz: Tz,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    /// Busy intervals inside the window, merged and sorted.
    pub busy: Vec<BusyInterval>,
    /// Free slots of exactly the requested length, inside working hours.
    pub slots: Vec<BusyInterval>,
}

/// Sorts and merges overlapping or touching intervals, dropping empty ones.
pub fn merge(mut intervals: Vec<BusyInterval>) -> Vec<BusyInterval> {
    intervals.retain(|i| i.start < i.end);
    intervals.sort();
    let mut merged: Vec<BusyInterval> = Vec::with_capacity(intervals.len());
    for interval in intervals {
        match merged.last_mut() {
            Some(last) if interval.start <= last.end => last.end = last.end.max(interval.end),
            _ => merged.push(interval),
        }
    }
    merged
}

/// Busy intervals clipped to the window, and the free slots around them.
pub fn free_slots(query: &AvailabilityQuery, busy: Vec<BusyInterval>) -> Availability {
    let clipped: Vec<BusyInterval> = busy
        .into_iter()
        .filter(|b| b.end > query.start && b.start < query.end)
        .map(|b| BusyInterval {
            start: b.start.max(query.start),
            end: b.end.min(query.end),
        })
        .collect();
    let busy = merge(clipped);
    let mut slots = Vec::new();
    if query.slot <= Duration::zero() {
        return Availability { busy, slots };
    }
    for (day_start, day_end) in working_periods(query) {
        let mut cursor = day_start;
        for b in busy
            .iter()
            .filter(|b| b.end > day_start && b.start < day_end)
        {
            push_slots(&mut slots, cursor, b.start.min(day_end), query.slot);
            cursor = cursor.max(b.end);
        }
        push_slots(&mut slots, cursor, day_end, query.slot);
    }
    Availability { busy, slots }
}

fn push_slots(
    slots: &mut Vec<BusyInterval>,
    mut from: DateTime<Utc>,
    to: DateTime<Utc>,
    slot: Duration,
) {
    while from + slot <= to {
        slots.push(BusyInterval {
            start: from,
            end: from + slot,
        });
        from += slot;
    }
}

/// Working periods of every local day touching the window, in UTC, clipped to the window.
fn working_periods(query: &AvailabilityQuery) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let first: NaiveDate = query.start.with_timezone(&query.tz).date_naive();
    let last: NaiveDate = query.end.with_timezone(&query.tz).date_naive();
    let mut periods = Vec::new();
    let mut day = first;
    while day <= last {
        if query.hours.days.contains(&day.weekday())
            && let (Some(start), Some(end)) = (
                local(&query.tz, day, query.hours.start),
                local(&query.tz, day, query.hours.end),
            )
        {
            let (start, end) = (start.max(query.start), end.min(query.end));
            if start < end {
                periods.push((start, end));
            }
        }
        let Some(next) = day.succ_opt() else { break };
        day = next;
    }
    periods
}

/// A local wall-clock time as UTC. In a DST gap the time does not exist: the first instant after
/// the gap is used. In an overlap the earlier instant is used.
fn local(tz: &Tz, day: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    let naive = day.and_time(time);
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(earlier, _) => Some(earlier.with_timezone(&Utc)),
        chrono::LocalResult::None => {
            // Walk forward to the end of the gap (gaps are at most a few hours).
            (1..=240)
                .find_map(|minutes| {
                    tz.from_local_datetime(&(naive + Duration::minutes(minutes)))
                        .earliest()
                })
                .map(|t| t.with_timezone(&Utc))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn iv(start: DateTime<Utc>, end: DateTime<Utc>) -> BusyInterval {
        BusyInterval { start, end }
    }

    #[test]
    fn overlapping_and_touching_intervals_merge() {
        let merged = merge(vec![
            iv(utc(2026, 1, 5, 10, 0), utc(2026, 1, 5, 11, 0)),
            iv(utc(2026, 1, 5, 9, 0), utc(2026, 1, 5, 10, 0)),
            iv(utc(2026, 1, 5, 10, 30), utc(2026, 1, 5, 12, 0)),
            iv(utc(2026, 1, 5, 14, 0), utc(2026, 1, 5, 14, 0)),
            iv(utc(2026, 1, 5, 15, 0), utc(2026, 1, 5, 16, 0)),
        ]);
        assert_eq!(
            merged,
            vec![
                iv(utc(2026, 1, 5, 9, 0), utc(2026, 1, 5, 12, 0)),
                iv(utc(2026, 1, 5, 15, 0), utc(2026, 1, 5, 16, 0))
            ]
        );
    }

    #[test]
    fn slots_fill_working_hours_around_meetings() {
        // Monday 2026-01-05 in UTC, 09-17, one meeting 10:00-11:30.
        let query = AvailabilityQuery {
            start: utc(2026, 1, 5, 0, 0),
            end: utc(2026, 1, 6, 0, 0),
            slot: Duration::minutes(60),
            hours: WorkingHours::default(),
            tz: chrono_tz::UTC,
        };
        let result = free_slots(
            &query,
            vec![iv(utc(2026, 1, 5, 10, 0), utc(2026, 1, 5, 11, 30))],
        );
        let starts: Vec<u32> = result
            .slots
            .iter()
            .map(|s| s.start.format("%H%M").to_string().parse().unwrap())
            .collect();
        assert_eq!(starts, vec![900, 1130, 1230, 1330, 1430, 1530]);
    }

    #[test]
    fn weekends_have_no_slots_and_all_day_events_block_the_day() {
        let query = AvailabilityQuery {
            start: utc(2026, 1, 9, 0, 0),
            end: utc(2026, 1, 12, 0, 0),
            slot: Duration::minutes(30),
            hours: WorkingHours::default(),
            tz: chrono_tz::UTC,
        };
        // Friday blocked all day; Saturday and Sunday are not working days.
        let result = free_slots(
            &query,
            vec![iv(utc(2026, 1, 9, 0, 0), utc(2026, 1, 10, 0, 0))],
        );
        assert!(result.slots.is_empty(), "{:?}", result.slots);
    }

    #[test]
    fn working_hours_follow_local_time_across_a_dst_switch() {
        // Paris: Friday 2026-03-27 is CET (UTC+1), Monday 2026-03-30 is CEST (UTC+2).
        let query = AvailabilityQuery {
            start: utc(2026, 3, 27, 0, 0),
            end: utc(2026, 3, 31, 0, 0),
            slot: Duration::hours(8),
            hours: WorkingHours::default(),
            tz: chrono_tz::Europe::Paris,
        };
        let result = free_slots(&query, vec![]);
        assert_eq!(
            result.slots,
            vec![
                iv(utc(2026, 3, 27, 8, 0), utc(2026, 3, 27, 16, 0)),
                iv(utc(2026, 3, 30, 7, 0), utc(2026, 3, 30, 15, 0))
            ]
        );
    }

    #[test]
    fn a_working_day_starting_in_a_dst_gap_starts_after_the_gap() {
        // 02:30 on 2026-03-29 does not exist in Paris; the day starts at 03:00 CEST = 01:00 UTC.
        let hours = WorkingHours {
            start: NaiveTime::from_hms_opt(2, 30, 0).unwrap(),
            days: vec![Weekday::Sun],
            ..Default::default()
        };
        let query = AvailabilityQuery {
            start: utc(2026, 3, 28, 12, 0),
            end: utc(2026, 3, 30, 0, 0),
            slot: Duration::hours(1),
            hours,
            tz: chrono_tz::Europe::Paris,
        };
        let result = free_slots(&query, vec![]);
        assert_eq!(
            result.slots.first().map(|s| s.start),
            Some(utc(2026, 3, 29, 1, 0))
        );
    }
}
