//! Google Calendar `freeBusy` as a [`CalendarProvider`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use quietbox_core::ports::{BusyInterval, CalendarProvider, ProviderError};
use reqwest::Method;
use serde_json::json;

use super::api::GoogleApi;

/// The primary calendar of the token's account.
#[derive(Debug, Clone)]
pub struct GoogleCalendar {
    api: GoogleApi,
}

impl GoogleCalendar {
    /// A calendar over `api`.
    pub fn new(api: GoogleApi) -> Self {
        GoogleCalendar { api }
    }
}

#[async_trait]
impl CalendarProvider for GoogleCalendar {
    async fn busy(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        tz: &str,
    ) -> Result<Vec<BusyInterval>, ProviderError> {
        let body = json!({"timeMin": start.to_rfc3339(), "timeMax": end.to_rfc3339(), "timeZone": tz, "items": [{"id": "primary"}]});
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
        let calendar = &answer["calendars"]["primary"];
        if let Some(errors) = calendar["errors"].as_array().filter(|e| !e.is_empty()) {
            return Err(ProviderError::Unavailable(format!(
                "freeBusy errors: {}",
                serde_json::Value::Array(errors.clone())
            )));
        }
        let parse = |v: &serde_json::Value| {
            v.as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        Ok(calendar["busy"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| {
                Some(BusyInterval {
                    start: parse(&b["start"])?,
                    end: parse(&b["end"])?,
                })
            })
            .collect())
    }
}
