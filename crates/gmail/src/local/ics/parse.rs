//! iCalendar text to the event series availability needs, read with `calcard` (lenient: a
//! line or component it cannot read is skipped and counted, several VCALENDAR objects are
//! read in turn) and resolved once: time zones (IANA, Windows and "(UTC±hh:mm) City" names,
//! VTIMEZONE hints, `X-WR-TIMEZONE`), RRULEs compiled for wall-clock expansion, EXDATE and
//! RECURRENCE-ID keyed by their wall-clock time in the series' zone.

use std::str::FromStr;

use calcard::common::PartialDateTime;
use calcard::common::timezone::Tz as CalTz;
use calcard::icalendar::{
    ICalendar, ICalendarComponent, ICalendarComponentType, ICalendarDuration, ICalendarEntry,
    ICalendarParameterName, ICalendarPeriod, ICalendarProperty, ICalendarStatus,
    ICalendarTransparency, ICalendarValue,
};
use calcard::{Entry, Parser};
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// Where a wall-clock time is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zone {
    Utc,
    Named(Tz),
    Fixed(FixedOffset),
    /// Floating times and dates: the asked time zone.
    Floating,
}

impl Zone {
    /// The instant of `wall` in this zone. A time in a DST gap is moved forward by the gap's
    /// length, an ambiguous one is its first occurrence (RFC 5545 §3.3.5).
    pub(crate) fn instant(self, wall: NaiveDateTime, asked: Tz) -> DateTime<Utc> {
        match self {
            Zone::Utc => Utc.from_utc_datetime(&wall),
            Zone::Fixed(offset) => Utc.from_utc_datetime(&(wall - offset_duration(offset))),
            Zone::Named(tz) => named_instant(tz, wall),
            Zone::Floating => named_instant(asked, wall),
        }
    }

    /// Whether `wall` does not exist in this zone (a DST gap).
    fn in_gap(self, wall: NaiveDateTime, asked: Tz) -> bool {
        let tz = match self {
            Zone::Named(tz) => tz,
            Zone::Floating => asked,
            Zone::Utc | Zone::Fixed(_) => return false,
        };
        matches!(tz.from_local_datetime(&wall), chrono::LocalResult::None)
    }

    /// The wall-clock time of `instant` in this zone (UTC for floating: no better guess).
    fn wall(self, instant: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Zone::Utc | Zone::Floating => instant.naive_utc(),
            Zone::Fixed(offset) => instant.naive_utc() + offset_duration(offset),
            Zone::Named(tz) => instant.with_timezone(&tz).naive_local(),
        }
    }
}

fn offset_duration(offset: FixedOffset) -> Duration {
    Duration::seconds(i64::from(offset.local_minus_utc()))
}

fn named_instant(tz: Tz, wall: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&wall) {
        chrono::LocalResult::Single(t) => t.to_utc(),
        chrono::LocalResult::Ambiguous(first, _) => first.to_utc(),
        chrono::LocalResult::None => {
            // In a gap: read with the offset in force before it.
            let before = wall - Duration::hours(12);
            let offset = tz.offset_from_utc_datetime(&before).fix();
            Utc.from_utc_datetime(&(wall - offset_duration(offset)))
        }
    }
}

/// A DATE or DATE-TIME value with its zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    Date(NaiveDate),
    Time(NaiveDateTime, Zone),
}

impl When {
    pub(crate) fn wall(self) -> NaiveDateTime {
        match self {
            When::Date(date) => date.and_time(chrono::NaiveTime::MIN),
            When::Time(wall, _) => wall,
        }
    }

    pub(crate) fn zone(self) -> Zone {
        match self {
            When::Date(_) => Zone::Floating,
            When::Time(_, zone) => zone,
        }
    }

    pub(crate) fn instant(self, asked: Tz) -> DateTime<Utc> {
        self.zone().instant(self.wall(), asked)
    }

    /// This value as a wall-clock time in `zone` (for matching EXDATE and RECURRENCE-ID to the
    /// instances of a series in that zone).
    fn wall_in(self, zone: Zone) -> NaiveDateTime {
        match self {
            When::Time(wall, own) if own != zone && own != Zone::Floating => {
                zone.wall(own.instant(wall, chrono_tz::UTC))
            }
            _ => self.wall(),
        }
    }
}

/// How long an instance lasts: `wall` is added to its wall-clock start (days of an all-day
/// event, DTEND in the start's zone), `exact` to the instant after that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Length {
    pub(crate) wall: Duration,
    pub(crate) exact: Duration,
}

impl Length {
    /// The end of an instance starting at `start_wall`. An instance whose start is in a DST
    /// gap (moved forward by RFC 5545 §3.3.5) keeps its length: its end moves with it.
    pub(crate) fn end(self, start_wall: NaiveDateTime, zone: Zone, asked: Tz) -> DateTime<Utc> {
        let end = if zone.in_gap(start_wall, asked) {
            let start = zone.instant(start_wall, asked);
            start.checked_add_signed(self.wall).unwrap_or(start)
        } else {
            let wall_end = start_wall
                .checked_add_signed(self.wall)
                .unwrap_or(start_wall);
            zone.instant(wall_end, asked)
        };
        end.checked_add_signed(self.exact).unwrap_or(end)
    }

    /// An upper bound of the length, for windows.
    pub(crate) fn bound(self) -> Duration {
        self.wall.abs() + self.exact.abs() + Duration::days(1)
    }
}

/// One instance replaced by a RECURRENCE-ID component.
#[derive(Debug, Clone)]
pub(crate) struct Override {
    /// The replaced instance, as a wall-clock time in the series' zone.
    pub(crate) rid: NaiveDateTime,
    pub(crate) this_and_future: bool,
    pub(crate) start: When,
    pub(crate) length: Length,
    pub(crate) busy: bool,
}

/// One RRULE ready to expand: its DTSTART and UNTIL are wall-clock times written as UTC, so
/// the instances are wall-clock times of the series' zone.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) set: rrule::RRuleSet,
    pub(crate) text: String,
}

/// A master event with its recurrence set and overrides (or a lone override).
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub(crate) uid: String,
    pub(crate) start: When,
    pub(crate) length: Length,
    pub(crate) busy: bool,
    pub(crate) rules: Vec<Rule>,
    /// RDATE instances: wall-clock starts in the series' zone, with a PERIOD's own length.
    pub(crate) rdates: Vec<(NaiveDateTime, Option<Length>)>,
    pub(crate) exdates: Vec<NaiveDateTime>,
    /// EXDATE;VALUE=DATE on a timed series: every instance on that day.
    pub(crate) exdays: Vec<NaiveDate>,
    pub(crate) overrides: Vec<Override>,
    /// No wall-clock instance of the series (overrides included) starts before this.
    pub(crate) first_wall: NaiveDateTime,
    /// Nor after this (`None` when a rule has no end known here).
    pub(crate) last_wall: Option<NaiveDateTime>,
    /// Longest instance (bound).
    pub(crate) longest: Duration,
}

/// What a calendar file holds for availability.
#[derive(Debug, Default)]
pub(crate) struct Calendar {
    pub(crate) series: Vec<Series>,
    /// Lines or components skipped, and a description of the first one.
    pub(crate) skipped: usize,
    pub(crate) first_skipped: Option<String>,
}

/// Why a text is not a calendar at all.
#[derive(Debug)]
pub(crate) struct NotCalendar {
    pub(crate) line: usize,
    pub(crate) text: String,
}

/// Reads every VCALENDAR of `text`; refuses only a text with none.
pub(crate) fn parse(text: &str) -> Result<Calendar, NotCalendar> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut calendar = Calendar::default();
    let mut parser = Parser::new(text);
    let mut found = false;
    loop {
        match parser.entry() {
            Entry::ICalendar(ical) => {
                found = true;
                read_calendar(&ical, &mut calendar);
            }
            Entry::Eof => break,
            Entry::VCard(_) => calendar.skip("a VCARD object"),
            Entry::InvalidLine(line) => calendar.skip(&format!("unreadable line {line:?}")),
            Entry::UnexpectedComponentEnd { expected, found } => calendar.skip(&format!(
                "END:{} where END:{} was expected",
                found.as_str(),
                expected.as_str()
            )),
            Entry::UnterminatedComponent(name) => {
                calendar.skip(&format!("component {name} without its END"))
            }
            Entry::TooManyComponents => {
                calendar.skip("too many components");
                break;
            }
            _ => calendar.skip("unknown entry"),
        }
    }
    if !found {
        let (line, first) = text
            .lines()
            .enumerate()
            .find(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| (i + 1, l.trim().chars().take(40).collect::<String>()))
            .unwrap_or((1, String::new()));
        return Err(NotCalendar {
            line,
            text: if first.is_empty() {
                "the file is empty; an iCalendar file starts with BEGIN:VCALENDAR".to_owned()
            } else {
                format!("{first:?} is not iCalendar (no BEGIN:VCALENDAR ... END:VCALENDAR)")
            },
        });
    }
    Ok(calendar)
}

impl Calendar {
    fn skip(&mut self, what: &str) {
        self.skipped += 1;
        if self.first_skipped.is_none() {
            self.first_skipped = Some(what.to_owned());
        }
    }
}

/// One VEVENT's properties, zones resolved.
struct Component {
    uid: String,
    start: When,
    length: Length,
    busy: bool,
    rules: Vec<calcard::icalendar::ICalendarRecurrenceRule>,
    rdates: Vec<(When, Option<Length>)>,
    exdates: Vec<When>,
    recurrence_id: Option<(When, bool)>,
    sequence: i64,
}

struct Zones<'a> {
    resolver: calcard::icalendar::timezone::TzResolver<&'a str>,
    /// VTIMEZONEs whose TZID names no zone, read from their rules.
    custom: std::collections::HashMap<String, Zone>,
    /// `X-WR-TIMEZONE`: floating and UTC times are read in it.
    calendar_zone: Option<Tz>,
}

impl Zones<'_> {
    fn resolve(&self, tzid: Option<&str>) -> Zone {
        let Some(tzid) = tzid else {
            return Zone::Floating;
        };
        match self.resolver.resolve(tzid) {
            Some(CalTz::Tz(tz)) => Zone::Named(tz),
            Some(CalTz::Fixed(offset)) => Zone::Fixed(offset),
            Some(CalTz::Floating) | None => {
                if let Some(zone) = self.custom.get(tzid) {
                    *zone
                } else if let Some(tz) = super::vtimezone::by_suffix(tzid) {
                    Zone::Named(tz)
                } else {
                    Zone::Floating
                }
            }
        }
    }

    fn when(&self, value: &PartialDateTime, tzid: Option<&str>) -> Option<When> {
        if !value.has_date() {
            return None;
        }
        let result = value.to_date_time()?;
        if !value.has_time() {
            return Some(When::Date(result.date_time.date()));
        }
        let when = match result.offset {
            Some(offset) if offset.local_minus_utc() == 0 => {
                When::Time(result.date_time, Zone::Utc)
            }
            Some(offset) => When::Time(result.date_time, Zone::Fixed(offset)),
            None => When::Time(result.date_time, self.resolve(tzid)),
        };
        Some(self.in_calendar_zone(when))
    }

    /// With `X-WR-TIMEZONE`, floating and UTC times become times of that zone (as Google,
    /// Apple and the `x-wr-timezone` reference read them).
    fn in_calendar_zone(&self, when: When) -> When {
        let Some(tz) = self.calendar_zone else {
            return when;
        };
        match when {
            When::Time(wall, Zone::Floating) => When::Time(wall, Zone::Named(tz)),
            When::Time(wall, Zone::Utc) => When::Time(
                Utc.from_utc_datetime(&wall)
                    .with_timezone(&tz)
                    .naive_local(),
                Zone::Named(tz),
            ),
            other => other,
        }
    }
}

fn read_calendar(ical: &ICalendar, calendar: &mut Calendar) {
    let calendar_zone = ical.components.first().and_then(|root| {
        root.entries
            .iter()
            .find_map(|entry| match (&entry.name, entry.values.first()) {
                (ICalendarProperty::Other(name), Some(ICalendarValue::Text(value)))
                    if name.eq_ignore_ascii_case("X-WR-TIMEZONE") =>
                {
                    match CalTz::from_str(value.trim()) {
                        Ok(CalTz::Tz(tz)) => Some(tz),
                        _ => None,
                    }
                }
                _ => None,
            })
    });
    let resolver = ical.build_tz_resolver();
    let mut custom = std::collections::HashMap::new();
    for vtimezone in ical.timezones() {
        let Some(tzid) = vtimezone
            .entries
            .iter()
            .find_map(|e| match (&e.name, e.values.first()) {
                (ICalendarProperty::Tzid, Some(ICalendarValue::Text(id))) => Some(id.as_str()),
                _ => None,
            })
        else {
            continue;
        };
        let named = matches!(resolver.resolve(tzid), Some(CalTz::Tz(_) | CalTz::Fixed(_)))
            || super::vtimezone::by_suffix(tzid).is_some();
        if !named && let Some(zone) = super::vtimezone::from_rules(ical, vtimezone) {
            custom.insert(tzid.to_owned(), zone);
        }
    }
    let zones = Zones {
        resolver,
        custom,
        calendar_zone,
    };
    let mut masters: Vec<Component> = Vec::new();
    let mut overrides: Vec<Component> = Vec::new();
    for component in &ical.components {
        if component.component_type != ICalendarComponentType::VEvent {
            continue;
        }
        match read_event(component, &zones) {
            Some(event) if event.recurrence_id.is_some() => overrides.push(event),
            Some(event) => masters.push(event),
            None => calendar.skip("a VEVENT without a readable DTSTART"),
        }
    }
    // A UID given twice (an updated copy of the event) is the copy with the higher SEQUENCE,
    // the later one on a tie.
    let mut latest: std::collections::HashMap<String, (i64, usize)> =
        std::collections::HashMap::new();
    for (index, master) in masters.iter().enumerate() {
        if master.uid.is_empty() {
            continue;
        }
        let entry = latest
            .entry(master.uid.clone())
            .or_insert((master.sequence, index));
        if master.sequence >= entry.0 {
            *entry = (master.sequence, index);
        }
    }
    let masters: Vec<Component> = masters
        .into_iter()
        .enumerate()
        .filter(|(index, m)| {
            m.uid.is_empty() || latest.get(&m.uid).is_some_and(|(_, i)| i == index)
        })
        .map(|(_, m)| m)
        .collect();
    let mut series: Vec<Series> = Vec::with_capacity(masters.len());
    let mut by_uid: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for master in masters {
        let zone = master.start.zone();
        let mut rules = Vec::new();
        for rule in &master.rules {
            match compile_rule(rule.clone(), master.start) {
                Ok(rule) => rules.push(rule),
                Err(problem) => calendar.skip(&format!("RRULE of {}: {problem}", master.uid)),
            }
        }
        let rdates = master
            .rdates
            .iter()
            .map(|(when, length)| (when.wall_in(zone), *length))
            .collect();
        let mut exdates = Vec::new();
        let mut exdays = Vec::new();
        for exdate in &master.exdates {
            match (exdate, master.start) {
                (When::Date(day), When::Time(..)) => exdays.push(*day),
                _ => exdates.push(exdate.wall_in(zone)),
            }
        }
        by_uid.entry(master.uid.clone()).or_insert(series.len());
        series.push(Series {
            uid: master.uid,
            start: master.start,
            length: master.length,
            busy: master.busy,
            rules,
            rdates,
            exdates,
            exdays,
            overrides: Vec::new(),
            first_wall: NaiveDateTime::MIN,
            last_wall: None,
            longest: Duration::zero(),
        });
    }
    for component in overrides {
        let Some((rid, this_and_future)) = component.recurrence_id else {
            continue;
        };
        match by_uid.get(&component.uid) {
            Some(&index) => {
                let master = &mut series[index];
                let rid = match (rid, master.start) {
                    (When::Date(day), When::Time(wall, _)) => day.and_time(wall.time()),
                    _ => rid.wall_in(master.start.zone()),
                };
                // An instance the master excludes stays excluded, override or not.
                if master.exdates.contains(&rid) || master.exdays.contains(&rid.date()) {
                    continue;
                }
                let o = Override {
                    rid,
                    this_and_future,
                    start: component.start,
                    length: component.length,
                    busy: component.busy,
                };
                // The same instance overridden twice: the later copy.
                master.overrides.retain(|old| old.rid != rid);
                master.overrides.push(o);
            }
            // An override without its master is an event of its own.
            None => series.push(Series {
                uid: component.uid,
                start: component.start,
                length: component.length,
                busy: component.busy,
                rules: Vec::new(),
                rdates: Vec::new(),
                exdates: Vec::new(),
                exdays: Vec::new(),
                overrides: Vec::new(),
                first_wall: NaiveDateTime::MIN,
                last_wall: None,
                longest: Duration::zero(),
            }),
        }
    }
    for mut one in series {
        bound(&mut one);
        calendar.series.push(one);
    }
}

/// Fills the series' wall-clock span and longest instance, so a query can skip it cheaply.
fn bound(series: &mut Series) {
    let start = series.start.wall();
    let mut first = start;
    let mut last = start;
    let mut longest = series.length.bound();
    for (wall, length) in &series.rdates {
        first = first.min(*wall);
        last = last.max(*wall);
        if let Some(length) = length {
            longest = longest.max(length.bound());
        }
    }
    for o in &series.overrides {
        // The override's own start may be in another zone: a day of margin covers offsets.
        let wall = o.start.wall_in(series.start.zone());
        first = first.min(wall).min(o.rid);
        last = last.max(wall).max(o.rid);
        longest = longest.max(o.length.bound());
        if o.this_and_future {
            longest += (wall - o.rid).abs();
        }
    }
    series.first_wall = first - Duration::days(1);
    series.last_wall =
        if series.rules.is_empty() && !series.overrides.iter().any(|o| o.this_and_future) {
            Some(last + Duration::days(1))
        } else {
            None
        };
    series.longest = longest;
}

fn read_event(component: &ICalendarComponent, zones: &Zones<'_>) -> Option<Component> {
    let mut uid = String::new();
    let mut start = None;
    let mut end = None;
    let mut duration = None;
    let mut busy = true;
    let mut rules = Vec::new();
    let mut rdates = Vec::new();
    let mut exdates = Vec::new();
    let mut recurrence_id = None;
    let mut sequence = 0;
    for entry in &component.entries {
        let tzid = entry.tz_id();
        match (&entry.name, entry.values.first()) {
            (ICalendarProperty::Sequence, Some(ICalendarValue::Integer(n))) => sequence = *n,
            (ICalendarProperty::Uid, Some(value)) => {
                uid = value.as_text().unwrap_or_default().to_owned();
            }
            (ICalendarProperty::Dtstart, Some(ICalendarValue::PartialDateTime(dt))) => {
                start = zones.when(dt, tzid);
            }
            (ICalendarProperty::Dtend, Some(ICalendarValue::PartialDateTime(dt))) => {
                end = zones.when(dt, tzid);
            }
            (ICalendarProperty::Duration, Some(ICalendarValue::Duration(d))) => {
                duration = Some(d.clone());
            }
            (
                ICalendarProperty::Transp,
                Some(ICalendarValue::Transparency(ICalendarTransparency::Transparent)),
            )
            | (
                ICalendarProperty::Status,
                Some(ICalendarValue::Status(ICalendarStatus::Cancelled)),
            ) => {
                busy = false;
            }
            (ICalendarProperty::Transp, Some(ICalendarValue::Text(t)))
                if t.eq_ignore_ascii_case("TRANSPARENT") =>
            {
                busy = false;
            }
            (ICalendarProperty::Status, Some(ICalendarValue::Text(t)))
                if t.eq_ignore_ascii_case("CANCELLED") =>
            {
                busy = false;
            }
            (ICalendarProperty::Rrule, Some(ICalendarValue::RecurrenceRule(rule))) => {
                rules.push((**rule).clone());
            }
            (ICalendarProperty::Rdate, _) => read_rdates(entry, tzid, zones, &mut rdates),
            (ICalendarProperty::Exdate, _) => {
                for value in &entry.values {
                    if let ICalendarValue::PartialDateTime(dt) = value
                        && let Some(when) = zones.when(dt, tzid)
                    {
                        exdates.push(when);
                    }
                }
            }
            (ICalendarProperty::RecurrenceId, Some(ICalendarValue::PartialDateTime(dt))) => {
                let future = entry
                    .parameters(&ICalendarParameterName::Range)
                    .next()
                    .is_some();
                recurrence_id = zones.when(dt, tzid).map(|when| (when, future));
            }
            _ => {}
        }
    }
    let start = start?;
    let length = match (end, duration) {
        (Some(end), _) => between(start, end),
        (None, Some(duration)) => from_duration(&duration, start),
        (None, None) => match start {
            // An all-day event without DTEND or DURATION lasts one day (RFC 5545 §3.6.1).
            When::Date(_) => Length {
                wall: Duration::days(1),
                exact: Duration::zero(),
            },
            When::Time(..) => Length::default(),
        },
    };
    Some(Component {
        uid,
        start,
        length,
        busy,
        rules,
        rdates,
        exdates,
        recurrence_id,
        sequence,
    })
}

fn read_rdates(
    entry: &ICalendarEntry,
    tzid: Option<&str>,
    zones: &Zones<'_>,
    rdates: &mut Vec<(When, Option<Length>)>,
) {
    for value in &entry.values {
        match value {
            ICalendarValue::PartialDateTime(dt) => {
                if let Some(when) = zones.when(dt, tzid) {
                    rdates.push((when, None));
                }
            }
            ICalendarValue::Period(ICalendarPeriod::Range { start, end }) => {
                if let (Some(start), Some(end)) = (zones.when(start, tzid), zones.when(end, tzid)) {
                    rdates.push((start, Some(between(start, end))));
                }
            }
            ICalendarValue::Period(ICalendarPeriod::Duration { start, duration }) => {
                if let Some(start) = zones.when(start, tzid) {
                    rdates.push((start, Some(from_duration(duration, start))));
                }
            }
            _ => {}
        }
    }
}

/// The length from DTSTART to DTEND: in wall-clock time when both are in one zone (a 09:00 to
/// 10:00 meeting stays so across DST), exact otherwise. A DTEND before DTSTART (invalid) is
/// read as the other way round: busy rather than wrongly free.
fn between(start: When, end: When) -> Length {
    if start.zone() == end.zone() {
        Length {
            wall: (end.wall() - start.wall()).abs(),
            exact: Duration::zero(),
        }
    } else {
        Length {
            wall: Duration::zero(),
            exact: (end.instant(chrono_tz::UTC) - start.instant(chrono_tz::UTC)).abs(),
        }
    }
}

/// DURATION: weeks and days are nominal (wall-clock days), the time part exact (RFC 5545
/// §3.3.6). A negative duration is zero.
fn from_duration(duration: &ICalendarDuration, _start: When) -> Length {
    if duration.neg {
        return Length::default();
    }
    let days = i64::from(duration.weeks) * 7 + i64::from(duration.days);
    let seconds = i64::from(duration.hours) * 3600
        + i64::from(duration.minutes) * 60
        + i64::from(duration.seconds);
    Length {
        wall: Duration::days(days),
        exact: Duration::seconds(seconds),
    }
}

/// An RRULE as a rule over wall-clock times: UNTIL is moved into the series' zone (a UTC
/// UNTIL to its wall-clock time there; a DATE UNTIL of a timed series to the end of that day).
fn compile_rule(
    mut rule: calcard::icalendar::ICalendarRecurrenceRule,
    start: When,
) -> Result<Rule, String> {
    let until = rule.until.take().map(|until| {
        let zone = start.zone();
        match until.to_date_time() {
            Some(result) if !until.has_time() => match start {
                When::Date(_) => Some(result.date_time),
                When::Time(..) => result.date_time.date().and_hms_opt(23, 59, 59),
            },
            Some(result) => match result.offset {
                Some(offset) => {
                    let instant =
                        Utc.from_utc_datetime(&(result.date_time - offset_duration(offset)));
                    Some(zone.wall(instant))
                }
                None => Some(result.date_time),
            },
            None => None,
        }
    });
    let mut text = rule.to_string();
    if let Some(Some(until)) = until {
        text.push_str(&format!(";UNTIL={}", until.format("%Y%m%dT%H%M%SZ")));
    }
    let dtstart = Utc
        .from_utc_datetime(&start.wall())
        .with_timezone(&rrule::Tz::UTC);
    let parsed: rrule::RRule<rrule::Unvalidated> =
        text.parse().map_err(|e: rrule::RRuleError| e.to_string())?;
    let set = parsed.build(dtstart).map_err(|e| e.to_string())?;
    Ok(Rule { set, text })
}
