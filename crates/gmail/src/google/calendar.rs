//! Google Calendar `freeBusy` as a [`CalendarProvider`].
//!
//! Every requested calendar must be answered: the busy time of a calendar that Google reports
//! in `errors[]` (`notFound`, `internalError`, …) or leaves out of the answer is unknown, and
//! unknown is never reported as free. A busy entry that cannot be read fails the query too.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use quietbox_core::ports::{BusyInterval, CalendarProvider, ProviderError};
use reqwest::Method;
use serde_json::{Value, json};

use super::api::GoogleApi;

/// The calendars of the token's account asked in freeBusy (`CALENDAR_IDS`).
#[derive(Debug, Clone)]
pub struct GoogleCalendar {
    api: GoogleApi,
    ids: Vec<String>,
}

impl GoogleCalendar {
    /// The primary calendar over `api`.
    pub fn new(api: GoogleApi) -> Self {
        GoogleCalendar::with_calendars(api, vec!["primary".to_owned()])
    }

    /// The calendars `ids` over `api` (`primary` when `ids` is empty); their busy times are
    /// merged.
    pub fn with_calendars(api: GoogleApi, ids: Vec<String>) -> Self {
        let mut unique: Vec<String> = Vec::with_capacity(ids.len());
        for id in ids {
            let id = id.trim().to_owned();
            if !id.is_empty() && !unique.contains(&id) {
                unique.push(id);
            }
        }
        if unique.is_empty() {
            unique.push("primary".to_owned());
        }
        GoogleCalendar { api, ids: unique }
    }

    /// The calendar ids asked.
    pub fn calendar_ids(&self) -> &[String] {
        &self.ids
    }
}

/// The busy intervals of every calendar in `ids` from a freeBusy answer, or the error naming
/// the first calendar that was not answered.
fn busy_of(answer: &Value, ids: &[String]) -> Result<Vec<BusyInterval>, ProviderError> {
    let mut busy = Vec::new();
    for id in ids {
        let Some(calendar) = answer["calendars"].get(id.as_str()) else {
            return Err(ProviderError::Unavailable(format!(
                "freeBusy: calendar {id:?} is missing from Google's answer, so its busy time is unknown"
            )));
        };
        if let Some(errors) = calendar["errors"].as_array().filter(|e| !e.is_empty()) {
            let reasons: Vec<String> = errors
                .iter()
                .map(|e| {
                    let reason = e["reason"].as_str().unwrap_or("unknown reason");
                    match e["domain"].as_str() {
                        Some(domain) => format!("{reason} ({domain})"),
                        None => reason.to_owned(),
                    }
                })
                .collect();
            return Err(ProviderError::Unavailable(format!(
                "freeBusy: Google could not answer for calendar {id:?}: {}",
                reasons.join(", ")
            )));
        }
        let entries = match &calendar["busy"] {
            Value::Null => &Vec::new(),
            Value::Array(entries) => entries,
            other => {
                return Err(ProviderError::Unavailable(format!(
                    "freeBusy: calendar {id:?} has a busy list that is not a list: {other}"
                )));
            }
        };
        for entry in entries {
            let start = time(&entry["start"]);
            let end = time(&entry["end"]);
            match (start, end) {
                (Some(start), Some(end)) if start <= end => busy.push(BusyInterval { start, end }),
                _ => {
                    return Err(ProviderError::Unavailable(format!(
                        "freeBusy: calendar {id:?} has a busy entry that cannot be read: {entry}"
                    )));
                }
            }
        }
    }
    busy.sort_by_key(|b| (b.start, b.end));
    Ok(busy)
}

fn time(value: &Value) -> Option<DateTime<Utc>> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

#[async_trait]
impl CalendarProvider for GoogleCalendar {
    async fn busy(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        tz: &str,
    ) -> Result<Vec<BusyInterval>, ProviderError> {
        let items: Vec<Value> = self.ids.iter().map(|id| json!({"id": id})).collect();
        let body = json!({"timeMin": start.to_rfc3339(), "timeMax": end.to_rfc3339(), "timeZone": tz, "items": items});
        let answer = self
            .api
            .call(
                "freeBusy",
                Method::POST,
                "/calendar/v3/freeBusy",
                &[],
                Some(&body),
            )
            .await?;
        busy_of(&answer, &self.ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_calendar_is_read_and_merged() {
        let answer = json!({"calendars": {
            "primary": {"busy": [{"start": "2026-03-02T10:00:00Z", "end": "2026-03-02T11:00:00Z"}]},
            "team@example.com": {"busy": [{"start": "2026-03-02T09:00:00Z", "end": "2026-03-02T09:30:00Z"}]},
        }});
        let busy = busy_of(&answer, &ids(&["primary", "team@example.com"])).unwrap();
        assert_eq!(busy.len(), 2);
        assert!(busy[0].start < busy[1].start);
    }

    #[test]
    fn a_calendar_without_busy_is_free() {
        let answer = json!({"calendars": {"primary": {}}});
        assert!(busy_of(&answer, &ids(&["primary"])).unwrap().is_empty());
    }

    #[test]
    fn a_missing_calendar_is_an_error_naming_it() {
        let answer = json!({"calendars": {"primary": {"busy": []}}});
        let error = busy_of(&answer, &ids(&["primary", "other"])).unwrap_err();
        assert!(error.to_string().contains("\"other\""), "{error}");
    }

    #[test]
    fn a_calendar_in_error_is_an_error_naming_it_and_the_reason() {
        let answer = json!({"calendars": {"gone": {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}}});
        let error = busy_of(&answer, &ids(&["gone"])).unwrap_err().to_string();
        assert!(
            error.contains("\"gone\"") && error.contains("notFound"),
            "{error}"
        );
    }

    #[test]
    fn an_unreadable_busy_entry_is_an_error() {
        for entry in [
            json!({"start": "yesterday", "end": "2026-03-02T11:00:00Z"}),
            json!({"start": "2026-03-02T10:00:00Z"}),
            json!({"start": "2026-03-02T12:00:00Z", "end": "2026-03-02T11:00:00Z"}),
        ] {
            let answer = json!({"calendars": {"primary": {"busy": [entry]}}});
            assert!(busy_of(&answer, &ids(&["primary"])).is_err());
        }
    }
}
