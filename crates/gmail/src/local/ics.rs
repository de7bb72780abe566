//! Calendar from an `.ics` file: events (recurring ones expanded with `rrule`), all-day events
//! placed in the asked time zone, transparent and cancelled events ignored.

use std::path::PathBuf;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
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
                Some(DatePerhapsTime::Date(_)) => Some(first_start + Duration::days(1)),
                _ => Some(first_start),
            })
            .unwrap_or(first_start);
        let length = (first_end - first_start).max(Duration::zero());
        let starts = match event.property_value("RRULE") {
            Some(rule) => occurrences(event, rule, tz, start - length, end)?,
            None => vec![first_start],
        };
        for occurrence in starts {
            let interval = BusyInterval {
                start: occurrence,
                end: occurrence + length,
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

/// Starts of a recurring event between `from` and `to` (at most 1,000).
fn occurrences(
    event: &icalendar::Event,
    rule: &str,
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, ProviderError> {
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
        None => return Ok(Vec::new()),
    };
    let mut text = format!("{dtstart}\nRRULE:{rule}");
    if let Some(exdate) = event.property_value("EXDATE") {
        text.push_str(&format!("\nEXDATE:{exdate}"));
    }
    let set = match rrule::RRuleSet::from_str(&text) {
        Ok(set) => set,
        // A rule we cannot read is skipped, not fatal: one odd event must not hide the calendar.
        Err(_) => return Ok(Vec::new()),
    };
    let after = rrule::Tz::UTC.from_utc_datetime(&from.naive_utc());
    let before = rrule::Tz::UTC.from_utc_datetime(&to.naive_utc());
    let result = set.after(after).before(before).all(1000);
    Ok(result
        .dates
        .into_iter()
        .map(|d| d.with_timezone(&Utc))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
