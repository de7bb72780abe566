//! Time zones the TZID does not name: a TZID with a registry prefix
//! (`/freeassociation.sourceforge.net/Tzfile/America/Argentina/Buenos_Aires`) is read by its
//! IANA suffix, and a custom VTIMEZONE (`TZID:/Europe/CUSTOM`, `TZID:Western/Central Europe`)
//! by its rules: its onsets are expanded (RFC 5545 §3.6.5) and the IANA zone that has the same
//! offsets over 2015–2035 stands for it; with none, its latest standard offset.

use std::str::FromStr;

use calcard::icalendar::{
    ICalendar, ICalendarComponent, ICalendarComponentType, ICalendarProperty, ICalendarValue,
};
use chrono::{FixedOffset, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use super::parse::Zone;

/// The IANA zone a TZID names after a registry prefix, if any.
pub(crate) fn by_suffix(tzid: &str) -> Option<Tz> {
    let parts: Vec<&str> = tzid.trim().trim_matches('"').split('/').collect();
    (0..parts.len()).find_map(|i| {
        let name = parts[i..].join("/");
        (!name.is_empty())
            .then(|| Tz::from_str(&name).ok())
            .flatten()
    })
}

/// The zone a VTIMEZONE's rules describe (see the module).
pub(crate) fn from_rules(ical: &ICalendar, vtimezone: &ICalendarComponent) -> Option<Zone> {
    let mut onsets: Vec<(i64, i32)> = Vec::new();
    let mut latest_standard: Option<(i64, i32)> = None;
    for id in &vtimezone.component_ids {
        let Some(observance) = ical.components.get(*id as usize) else {
            continue;
        };
        let standard = match observance.component_type {
            ICalendarComponentType::Standard => true,
            ICalendarComponentType::Daylight => false,
            _ => continue,
        };
        let (Some(from), Some(to)) = (
            offset(observance, &ICalendarProperty::Tzoffsetfrom),
            offset(observance, &ICalendarProperty::Tzoffsetto),
        ) else {
            continue;
        };
        let Some(start) =
            observance
                .entries
                .iter()
                .find_map(|e| match (&e.name, e.values.first()) {
                    (ICalendarProperty::Dtstart, Some(ICalendarValue::PartialDateTime(dt))) => {
                        dt.to_date_time().map(|r| r.date_time)
                    }
                    _ => None,
                })
        else {
            continue;
        };
        let mut walls = vec![start];
        for entry in &observance.entries {
            match (&entry.name, entry.values.first()) {
                (ICalendarProperty::Rrule, Some(ICalendarValue::RecurrenceRule(rule))) => {
                    let mut rule = (**rule).clone();
                    let until = rule.until.take().and_then(|u| u.to_date_time());
                    let mut text = rule.to_string();
                    if let Some(until) = until {
                        text.push_str(&format!(
                            ";UNTIL={}",
                            until.date_time.format("%Y%m%dT%H%M%SZ")
                        ));
                    }
                    let dtstart = Utc.from_utc_datetime(&start).with_timezone(&rrule::Tz::UTC);
                    let Ok(set) = text
                        .parse::<rrule::RRule<rrule::Unvalidated>>()
                        .and_then(|r| r.build(dtstart))
                    else {
                        continue;
                    };
                    let horizon =
                        NaiveDate::from_ymd_opt(2040, 1, 1)?.and_time(chrono::NaiveTime::MIN);
                    for (n, instance) in (&set.limit()).into_iter().enumerate() {
                        if n > 500 || instance.naive_utc() > horizon {
                            break;
                        }
                        walls.push(instance.naive_utc());
                    }
                }
                (ICalendarProperty::Rdate, _) => {
                    for value in &entry.values {
                        if let ICalendarValue::PartialDateTime(dt) = value
                            && let Some(r) = dt.to_date_time()
                        {
                            walls.push(r.date_time);
                        }
                    }
                }
                _ => {}
            }
        }
        for wall in walls {
            let onset = wall.and_utc().timestamp() - i64::from(from);
            onsets.push((onset, to));
            if standard && latest_standard.is_none_or(|(at, _)| onset > at) {
                latest_standard = Some((onset, to));
            }
        }
    }
    if onsets.is_empty() {
        return None;
    }
    onsets.sort_unstable();
    let offset_at = |at: i64| {
        onsets
            .partition_point(|(onset, _)| *onset <= at)
            .checked_sub(1)
            .map(|i| onsets[i].1)
    };
    let probes: Vec<(i64, i32)> = (2015..2035)
        .flat_map(|year| (1..=12).flat_map(move |month| [(year, month, 1), (year, month, 15)]))
        .filter_map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d))
        .map(|date| date.and_hms_opt(12, 0, 0).map(|t| t.and_utc().timestamp()))
        .filter_map(|t| t.and_then(|t| Some((t, offset_at(t)?))))
        .collect();
    if !probes.is_empty() {
        let matches = |tz: &Tz| {
            probes.iter().all(|(at, expected)| {
                Utc.timestamp_opt(*at, 0).single().is_some_and(|t| {
                    tz.offset_from_utc_datetime(&t.naive_utc())
                        .fix()
                        .local_minus_utc()
                        == *expected
                })
            })
        };
        if let Some(tz) = chrono_tz::TZ_VARIANTS.iter().find(|tz| matches(tz)) {
            return Some(Zone::Named(*tz));
        }
    }
    let (_, standard) = latest_standard.or_else(|| onsets.last().copied())?;
    FixedOffset::east_opt(standard).map(Zone::Fixed)
}

fn offset(component: &ICalendarComponent, name: &ICalendarProperty) -> Option<i32> {
    component
        .entries
        .iter()
        .find_map(|e| match (&e.name, e.values.first()) {
            (n, Some(ICalendarValue::PartialDateTime(offset))) if n == name => {
                let seconds = i32::from(offset.tz_hour?) * 3600
                    + i32::from(offset.tz_minute.unwrap_or_default()) * 60;
                Some(if offset.tz_minus { -seconds } else { seconds })
            }
            _ => None,
        })
}
