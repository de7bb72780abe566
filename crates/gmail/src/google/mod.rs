//! Google: the OAuth token (`token.json`), a quota-aware REST client with retries, and the
//! Gmail and Calendar providers built on it. `base_url` (from `GOOGLE_API_BASE_URL`) points the
//! client at testkit's fake Google in tests.

mod api;
mod calendar;
mod gmail;
mod login;
mod oauth_http;
mod quota;
mod send;
mod token;

pub use api::{DEFAULT_RETRY_AFTER_MAX, GoogleApi, RetryPolicy};
pub use calendar::GoogleCalendar;
pub use gmail::GmailProvider;
pub use login::{
    ARCHIVE_SCOPES, CALENDAR_FREEBUSY, DEFAULT_SCOPES, GMAIL_MODIFY, GMAIL_READONLY, GMAIL_SEND,
    GMAIL_SETTINGS_BASIC, MAIL_GOOGLE_COM, login, login_scopes,
};
pub use quota::QuotaBucket;
pub use token::{TokenFile, TokenManager};
