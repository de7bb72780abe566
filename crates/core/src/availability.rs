//! Free slots: busy intervals merged, working hours laid out in the owner's time zone (so a DST
//! switch moves them in UTC, not in local time), and the gaps cut into slots.
//!
//! What one request may ask is bounded, so its cost is too: the window lies within
//! [`MAX_YEARS_FROM_NOW`] years of now and spans at most [`MAX_WINDOW_DAYS`] days, and slots last
//! [`MIN_SLOT_MINUTES`] to [`MAX_SLOT_MINUTES`] minutes. Every date computation on request values
//! is checked: a value out of range is an [`CoreError::InvalidInput`], never a panic.

use std::ops::RangeInclusive;

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc,
    Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::ports::BusyInterval;
use crate::service::CoreError;

/// Shortest slot a request may ask for, in minutes.
pub const MIN_SLOT_MINUTES: i64 = 5;
/// Longest slot a request may ask for, in minutes (one day).
pub const MAX_SLOT_MINUTES: i64 = 1440;
/// Slot length when a request names none, in minutes.
pub const DEFAULT_SLOT_MINUTES: i64 = 30;
/// Longest window a request may ask for, in days.
pub const MAX_WINDOW_DAYS: i64 = 62;
/// Window length when a request names no end, in days.
pub const DEFAULT_WINDOW_DAYS: i64 = 7;
/// The window must start and end within this many years (of 366 days) before or after now.
pub const MAX_YEARS_FROM_NOW: i64 = 5;

/// The allowed slot lengths, in minutes.
pub const SLOT_MINUTES: RangeInclusive<i64> = MIN_SLOT_MINUTES..=MAX_SLOT_MINUTES;

/// The slot length for `minutes`, refused outside [`SLOT_MINUTES`].
pub fn slot_length(minutes: i64) -> Result<Duration, CoreError> {
    if !SLOT_MINUTES.contains(&minutes) {
        return Err(CoreError::InvalidInput(format!(
            "slot_minutes must be between {MIN_SLOT_MINUTES} and {MAX_SLOT_MINUTES}, not {minutes}"
        )));
    }
    Duration::try_minutes(minutes)
        .ok_or_else(|| CoreError::InvalidInput(format!("slot_minutes {minutes} is out of range")))
}

/// How far from now a window may lie.
fn max_distance() -> Duration {
    Duration::days(MAX_YEARS_FROM_NOW * 366)
}

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

impl AvailabilityQuery {
    /// A query from a protocol's arguments, each optional: `start` defaults to `now`, `end` to
    /// [`DEFAULT_WINDOW_DAYS`] after `start`, the slot to [`DEFAULT_SLOT_MINUTES`]. The result is
    /// [`validate`](Self::validate)d against `now`.
    pub fn from_request(
        now: DateTime<Utc>,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
        slot_minutes: Option<i64>,
        hours: WorkingHours,
        tz: Tz,
    ) -> Result<Self, CoreError> {
        let slot = slot_length(slot_minutes.unwrap_or(DEFAULT_SLOT_MINUTES))?;
        let start = start.unwrap_or(now);
        check_near(now, "start", start)?;
        let end = match end {
            Some(end) => end,
            None => start
                .checked_add_signed(Duration::days(DEFAULT_WINDOW_DAYS))
                .ok_or_else(|| CoreError::InvalidInput(format!("start {start} is out of range")))?,
        };
        let query = AvailabilityQuery {
            start,
            end,
            slot,
            hours,
            tz,
        };
        query.validate(now)?;
        Ok(query)
    }

    /// Refuses a window that ends before it starts, spans more than [`MAX_WINDOW_DAYS`] days or
    /// lies more than [`MAX_YEARS_FROM_NOW`] years from `now`, and a slot outside
    /// [`SLOT_MINUTES`].
    pub fn validate(&self, now: DateTime<Utc>) -> Result<(), CoreError> {
        check_near(now, "start", self.start)?;
        check_near(now, "end", self.end)?;
        if self.end <= self.start {
            return Err(CoreError::InvalidInput(
                "the window must end after it starts".into(),
            ));
        }
        if self.end.signed_duration_since(self.start) > Duration::days(MAX_WINDOW_DAYS) {
            return Err(CoreError::InvalidInput(format!(
                "the window may span at most {MAX_WINDOW_DAYS} days"
            )));
        }
        let minutes = self.slot.num_minutes();
        if self.slot != Duration::minutes(minutes) || !SLOT_MINUTES.contains(&minutes) {
            return Err(CoreError::InvalidInput(format!(
                "slots must last a whole number of minutes between {MIN_SLOT_MINUTES} and {MAX_SLOT_MINUTES}"
            )));
        }
        Ok(())
    }
}

/// Refuses `value` (the window's `field`) when it lies more than [`max_distance`] from `now`.
fn check_near(now: DateTime<Utc>, field: &str, value: DateTime<Utc>) -> Result<(), CoreError> {
    // Both are valid instants, so their difference always fits a Duration.
    if value.signed_duration_since(now).abs() > max_distance() {
        return Err(CoreError::InvalidInput(format!(
            "{field} {value} is more than {MAX_YEARS_FROM_NOW} years from now ({now}); \
             availability is answered only within {MAX_YEARS_FROM_NOW} years of today"
        )));
    }
    Ok(())
}

/// The answer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
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

/// Busy intervals clipped to the window, and the free slots around them. The query should be
/// [`AvailabilityQuery::validate`]d first (the work grows with the window's length); any query
/// is answered without panicking.
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
    while let Some(end) = from.checked_add_signed(slot).filter(|end| *end <= to) {
        slots.push(BusyInterval { start: from, end });
        from = end;
    }
}

/// The local calendar date of `instant` in `tz`; `None` when it falls outside chrono's range.
fn local_date(instant: DateTime<Utc>, tz: &Tz) -> Option<NaiveDate> {
    let offset = tz.offset_from_utc_datetime(&instant.naive_utc()).fix();
    instant
        .naive_utc()
        .checked_add_offset(offset)
        .map(|t: NaiveDateTime| t.date())
}

/// Working periods of every local day touching the window, in UTC, clipped to the window.
fn working_periods(query: &AvailabilityQuery) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut periods = Vec::new();
    let (Some(first), Some(last)) = (
        local_date(query.start, &query.tz),
        local_date(query.end, &query.tz),
    ) else {
        return periods;
    };
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
                    let later = naive.checked_add_signed(Duration::minutes(minutes))?;
                    tz.from_local_datetime(&later).earliest()
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

    fn now() -> DateTime<Utc> {
        utc(2026, 12, 1, 19, 0)
    }

    fn request(
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
        slot_minutes: Option<i64>,
    ) -> Result<AvailabilityQuery, CoreError> {
        AvailabilityQuery::from_request(
            now(),
            start,
            end,
            slot_minutes,
            WorkingHours::default(),
            chrono_tz::Europe::Paris,
        )
    }

    fn refused(result: Result<AvailabilityQuery, CoreError>, needle: &str) {
        match result {
            Err(e @ CoreError::InvalidInput(_)) => {
                assert_eq!(e.code(), crate::ErrorCode::InvalidRequest);
                assert!(e.to_string().contains(needle), "{e}");
            }
            other => panic!("expected a validation error naming {needle:?}, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_now_a_week_and_half_an_hour() {
        let query = request(None, None, None).unwrap();
        assert_eq!(query.start, now());
        assert_eq!(query.end, now() + Duration::days(7));
        assert_eq!(query.slot, Duration::minutes(30));
    }

    #[test]
    fn slot_minutes_outside_5_to_1440_are_a_validation_error() {
        for minutes in [i64::MAX, i64::MIN, -30, 0, 4, 1441, 9_223_372_036_854_775] {
            refused(
                request(None, None, Some(minutes)),
                "slot_minutes must be between 5 and 1440",
            );
        }
        for minutes in [5, 60, 1440] {
            assert_eq!(
                request(None, None, Some(minutes)).unwrap().slot,
                Duration::minutes(minutes)
            );
        }
    }

    #[test]
    fn a_window_far_from_now_is_a_validation_error() {
        let far = utc(9999, 12, 31, 0, 0);
        refused(request(Some(far), None, None), "more than 5 years from now");
        refused(request(None, Some(far), None), "more than 5 years from now");
        refused(
            request(Some(DateTime::<Utc>::MAX_UTC), None, None),
            "more than 5 years from now",
        );
        refused(
            request(
                Some(DateTime::<Utc>::MIN_UTC),
                Some(DateTime::<Utc>::MAX_UTC),
                None,
            ),
            "more than 5 years from now",
        );
        refused(
            request(
                Some(utc(2031, 11, 1, 0, 0)),
                Some(utc(2032, 1, 1, 0, 0)),
                None,
            ),
            "end 2032-01-01",
        );
        assert!(request(Some(utc(2031, 11, 1, 0, 0)), None, None).is_ok());
        assert!(request(Some(utc(2021, 12, 5, 0, 0)), None, None).is_ok());
    }

    #[test]
    fn a_window_longer_than_62_days_or_backwards_is_a_validation_error() {
        let start = utc(2027, 1, 1, 0, 0);
        refused(
            request(Some(start), Some(start + Duration::days(63)), None),
            "at most 62 days",
        );
        refused(
            request(Some(start), Some(start), None),
            "must end after it starts",
        );
        assert!(request(Some(start), Some(start + Duration::days(62)), None).is_ok());
    }

    #[test]
    fn a_hand_built_query_is_validated_too() {
        let mut query = request(None, None, None).unwrap();
        query.slot = Duration::seconds(301);
        assert!(query.validate(now()).is_err());
        query.slot = Duration::MAX;
        assert!(query.validate(now()).is_err());
        query.slot = Duration::minutes(1440);
        assert!(query.validate(now()).is_ok());
    }

    #[test]
    fn free_slots_at_the_ends_of_time_do_not_panic() {
        for (start, end) in [
            (
                DateTime::<Utc>::MAX_UTC - Duration::days(2),
                DateTime::<Utc>::MAX_UTC,
            ),
            (
                DateTime::<Utc>::MIN_UTC,
                DateTime::<Utc>::MIN_UTC + Duration::days(2),
            ),
        ] {
            for tz in [chrono_tz::Pacific::Kiritimati, chrono_tz::Etc::GMTPlus12] {
                let query = AvailabilityQuery {
                    start,
                    end,
                    slot: Duration::MAX,
                    hours: WorkingHours::default(),
                    tz,
                };
                let _ = free_slots(&query, vec![iv(start, end)]);
                let query = AvailabilityQuery {
                    slot: Duration::minutes(5),
                    ..query
                };
                let _ = free_slots(&query, vec![]);
            }
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const ZONES: [Tz; 5] = [
            chrono_tz::UTC,
            chrono_tz::Europe::Paris,
            chrono_tz::Pacific::Kiritimati,
            chrono_tz::Etc::GMTPlus12,
            chrono_tz::America::St_Johns,
        ];

        /// Any instant chrono can represent, the extremes included.
        fn instant() -> impl Strategy<Value = DateTime<Utc>> {
            let (min, max) = (
                DateTime::<Utc>::MIN_UTC.timestamp(),
                DateTime::<Utc>::MAX_UTC.timestamp(),
            );
            prop_oneof![
                (min..=max).prop_map(move |s| DateTime::from_timestamp(s, 0).unwrap()),
                // Near now, where requests are answered.
                (-400_000_000i64..400_000_000).prop_map(|s| now() + Duration::seconds(s)),
                Just(DateTime::<Utc>::MIN_UTC),
                Just(DateTime::<Utc>::MAX_UTC),
            ]
        }

        fn minutes() -> impl Strategy<Value = i64> {
            prop_oneof![any::<i64>(), -10i64..2000, Just(i64::MAX), Just(i64::MIN)]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn any_request_is_answered_or_refused_cleanly(
                start in proptest::option::of(instant()),
                end in proptest::option::of(instant()),
                slot_minutes in proptest::option::of(minutes()),
                zone in 0..ZONES.len(),
                busy in proptest::collection::vec((instant(), instant()), 0..4),
            ) {
                let result = AvailabilityQuery::from_request(
                    now(), start, end, slot_minutes, WorkingHours::default(), ZONES[zone],
                );
                match result {
                    Ok(query) => {
                        prop_assert!(query.start < query.end);
                        let busy = busy.into_iter().map(|(s, e)| iv(s, e)).collect();
                        let answer = free_slots(&query, busy);
                        for slot in &answer.slots {
                            prop_assert_eq!(slot.end - slot.start, query.slot);
                            prop_assert!(slot.start >= query.start && slot.end <= query.end);
                        }
                    }
                    Err(e) => {
                        prop_assert_eq!(e.code(), crate::ErrorCode::InvalidRequest);
                        prop_assert!(matches!(e, CoreError::InvalidInput(_)));
                    }
                }
            }

            #[test]
            fn free_slots_never_panic_anywhere_in_chronos_range(
                start in instant(),
                length_minutes in 1i64..(3 * 1440),
                slot_minutes in 5i64..=i64::MAX / 60_000,
                zone in 0..ZONES.len(),
            ) {
                let end = start
                    .checked_add_signed(Duration::minutes(length_minutes))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                let query = AvailabilityQuery {
                    start,
                    end,
                    slot: Duration::try_minutes(slot_minutes).unwrap_or(Duration::MAX),
                    hours: WorkingHours::default(),
                    tz: ZONES[zone],
                };
                let _ = query.validate(now());
                let _ = free_slots(&query, vec![iv(start, end)]);
                let _ = free_slots(&query, vec![]);
            }
        }
    }
}
