//! One call to a Google API, done the way Google asks: quota units taken from the bucket first,
//! a fresh token, a refresh and one retry after a 401, jittered exponential backoff on 429, on
//! 403 `rateLimitExceeded`/`userRateLimitExceeded`, on 5xx and on dropped connections (honouring
//! `Retry-After`, in seconds or as an HTTP date, up to a configurable cap: a longer wait fails the
//! call with [`ProviderError::RateLimited`] carrying Google's wait instead of holding it), and
//! `gmail_requests_total{method,status}` counted for every attempt. A 403 for a token without the
//! method's OAuth scope becomes [`ProviderError::MissingScope`], naming it; so does an archiving
//! call when `token.json` records the scopes Google granted and the needed one is not among them.
//!
//! Calls that must not happen twice (`messages.send`) go through [`GoogleApi::call_at_most_once`]:
//! they are repeated only when the request cannot have reached Google (no connection, a 401, a
//! rate-limit refusal); anything else that may have been processed is
//! [`CallError::Ambiguous`], for the caller to resolve (see `send.rs`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use quietbox_core::ports::ProviderError;
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::login::{
    CALENDAR_FREEBUSY, GMAIL_MODIFY, GMAIL_READONLY, GMAIL_SEND, GMAIL_SETTINGS_BASIC,
    MAIL_GOOGLE_COM,
};
use super::quota::QuotaBucket;
use super::token::TokenManager;

/// How hard to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub attempts: u32,
    /// First backoff; doubles each retry (with up to 50% jitter).
    pub base_delay: Duration,
    /// Longest backoff.
    pub max_delay: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(16),
            timeout: Duration::from_secs(30),
        }
    }
}

/// The longest `Retry-After` obeyed by default; a longer one fails the call.
pub const DEFAULT_RETRY_AFTER_MAX: Duration = Duration::from_secs(30);

/// A call that ended without a usable answer.
#[derive(Debug)]
pub(crate) enum CallError {
    /// Google answered this status (after retries where they apply).
    Status(u16, String),
    /// Something else (auth, network after retries).
    Provider(ProviderError),
    /// An at-most-once call failed after its request may have reached Google (a 5xx, a timeout,
    /// a connection closed after the request was written): it may or may not have taken effect.
    Ambiguous(String),
}

/// Whether a failed request may simply be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Reads and idempotent writes: retried on any transient failure.
    Safe,
    /// `messages.send`: retried only when the request cannot have been processed.
    AtMostOnce,
}

impl From<CallError> for ProviderError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Status(429, body) => {
                let _ = body;
                ProviderError::RateLimited { retry_after: None }
            }
            CallError::Status(status, body) if status >= 500 => {
                ProviderError::Unavailable(format!("Google answered {status}: {body}"))
            }
            CallError::Status(status, body) => {
                ProviderError::InvalidInput(format!("Google answered {status}: {body}"))
            }
            CallError::Provider(error) => error,
            CallError::Ambiguous(reason) => ProviderError::Unavailable(reason),
        }
    }
}

/// A quota-aware, retrying Google API client.
#[derive(Debug, Clone)]
pub struct GoogleApi {
    http: reqwest::Client,
    base: String,
    tokens: Arc<TokenManager>,
    quota: Arc<QuotaBucket>,
    retry: RetryPolicy,
    retry_after_max: Duration,
}

/// Quota units of a Gmail method.
pub(crate) fn units(method: &str) -> u32 {
    match method {
        "messages.list" | "messages.get" => 5,
        "history.list" => 2,
        "messages.send" => 100,
        "messages.batchModify" => 50,
        "settings.filters.create" | "settings.filters.delete" => 5,
        _ => 1,
    }
}

/// The OAuth scope a method needs (the narrowest Google accepts for it), and what for.
pub(crate) fn required_scope(method: &str) -> (&'static str, &'static str) {
    match method {
        "settings.filters.create" | "settings.filters.delete" => {
            (GMAIL_SETTINGS_BASIC, "creating and deleting Gmail filters")
        }
        "messages.batchModify" => (GMAIL_MODIFY, "taking Gmail messages out of the inbox"),
        "messages.send" => (GMAIL_SEND, "sending mail"),
        "freeBusy" => (CALENDAR_FREEBUSY, "reading free/busy"),
        _ => (GMAIL_READONLY, "reading Gmail"),
    }
}

/// The [`ProviderError::MissingScope`] for a 403 "insufficient scopes" answer to `method`.
fn missing_scope(method: &str) -> ProviderError {
    let (scope, needed_for) = required_scope(method);
    let remedy = if scope == GMAIL_MODIFY || scope == GMAIL_SETTINGS_BASIC {
        "run `quietbox-api login --archive` (or `login` with UNSUBSCRIBE_ENFORCE=archive) to grant it"
    } else {
        "run `quietbox-api login` again to grant it"
    };
    ProviderError::MissingScope {
        scope: scope.to_owned(),
        needed_for: needed_for.to_owned(),
        remedy: remedy.to_owned(),
    }
}

/// Whether a 403 says the token lacks a scope (Google's `ACCESS_TOKEN_SCOPE_INSUFFICIENT`, the
/// older `insufficientPermissions`, or `error="insufficient_scope"` in `WWW-Authenticate`).
fn scope_insufficient(www_authenticate: Option<&str>, body: &str) -> bool {
    www_authenticate.is_some_and(|v| v.contains("insufficient_scope"))
        || body.contains("ACCESS_TOKEN_SCOPE_INSUFFICIENT")
        || body.contains("insufficientPermissions")
}

impl GoogleApi {
    /// A client of `base` (`https://www.googleapis.com`, or a fake's URL).
    pub fn new(
        http: reqwest::Client,
        base: &str,
        tokens: Arc<TokenManager>,
        quota: Arc<QuotaBucket>,
        retry: RetryPolicy,
    ) -> Self {
        GoogleApi {
            http,
            base: base.trim_end_matches('/').to_owned(),
            tokens,
            quota,
            retry,
            retry_after_max: DEFAULT_RETRY_AFTER_MAX,
        }
    }

    /// The longest `Retry-After` this client waits for (`GOOGLE_RETRY_AFTER_MAX_S`; default
    /// [`DEFAULT_RETRY_AFTER_MAX`]). When Google asks for longer, the call fails at once with
    /// [`ProviderError::RateLimited`] carrying Google's wait, which the REST layer answers as 503
    /// with its own `Retry-After`.
    pub fn with_retry_after_max(mut self, max: Duration) -> Self {
        self.retry_after_max = max;
        self
    }

    /// The scopes auto-archiving needs ([`ARCHIVE_SCOPES`](super::ARCHIVE_SCOPES)) that
    /// `token.json` records as not granted; empty when all are granted or the file records no
    /// scopes (older files: then Google's 403 names a missing one when it is used).
    pub async fn missing_archive_scopes(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        for method in ["messages.batchModify", "settings.filters.create"] {
            if !self.scope_granted(method).await {
                missing.push(required_scope(method).0);
            }
        }
        missing
    }

    /// `false` when `token.json` records its granted scopes and none of those Google accepts for
    /// `method` is among them. Checked for the archiving methods only (reads and sends fail on
    /// their own 403 the same way, and old files record nothing).
    async fn scope_granted(&self, method: &str) -> bool {
        let accepted: &[&str] = match method {
            "messages.batchModify" => &[GMAIL_MODIFY, MAIL_GOOGLE_COM],
            "settings.filters.create" | "settings.filters.delete" => &[GMAIL_SETTINGS_BASIC],
            _ => return true,
        };
        self.tokens
            .granted_scopes()
            .await
            .is_none_or(|granted| granted.iter().any(|g| accepted.contains(&g.as_str())))
    }

    /// Calls `method` (the metric label, e.g. `messages.get`) at `path` with optional JSON body.
    pub(crate) async fn call(
        &self,
        method: &'static str,
        http_method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        self.request(method, http_method, path, query, body, Repeat::Safe)
            .await
    }

    /// Like [`GoogleApi::call`] for a call that must not take effect twice: it is repeated only
    /// after failures that prove Google did not process it (connect errors, 401 before the
    /// refresh, 429 and 403 rate limits); after any other failure it returns
    /// [`CallError::Ambiguous`] without repeating.
    pub(crate) async fn call_at_most_once(
        &self,
        method: &'static str,
        http_method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        self.request(method, http_method, path, query, body, Repeat::AtMostOnce)
            .await
    }

    async fn request(
        &self,
        method: &'static str,
        http_method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        repeat: Repeat,
    ) -> Result<Value, CallError> {
        if !self.scope_granted(method).await {
            return Err(CallError::Provider(missing_scope(method)));
        }
        let url = format!("{}{path}", self.base);
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.quota.acquire(units(method)).await;
            let token = self
                .tokens
                .access_token()
                .await
                .map_err(CallError::Provider)?;
            let mut request = self
                .http
                .request(http_method.clone(), &url)
                .bearer_auth(&token)
                .query(query)
                .timeout(self.retry.timeout);
            if let Some(body) = body {
                request = request.json(body);
            }
            let (retry_after, reason) = match request.send().await {
                Err(error) => {
                    metrics::counter!("gmail_requests_total", "method" => method, "status" => "error").increment(1);
                    // A connect error (refused, DNS, TLS) means nothing was sent; anything later
                    // (a timeout, a connection closed mid-exchange) may follow a processed request.
                    if repeat == Repeat::AtMostOnce && !error.is_connect() {
                        return Err(CallError::Ambiguous(format!(
                            "{method}: no answer from Google after the request was sent ({})",
                            super::oauth_http::with_causes(&error)
                        )));
                    }
                    (None, format!("connection: {error}"))
                }
                Ok(response) => {
                    let status = response.status();
                    metrics::counter!("gmail_requests_total", "method" => method, "status" => status.as_u16().to_string()).increment(1);
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, Utc::now()));
                    let challenge = response
                        .headers()
                        .get(reqwest::header::WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let text = response.text().await.unwrap_or_default();
                    if status.is_success() {
                        // `batchModify` and `filters.delete` answer with an empty body.
                        if text.trim().is_empty() {
                            return Ok(Value::Null);
                        }
                        return serde_json::from_str(&text).map_err(|e| {
                            CallError::Provider(ProviderError::Unavailable(format!(
                                "bad JSON from Google: {e}"
                            )))
                        });
                    }
                    if status == StatusCode::UNAUTHORIZED && refreshed {
                        return Err(CallError::Provider(rejected_after_refresh(method, &text)));
                    }
                    if status == StatusCode::UNAUTHORIZED {
                        refreshed = true;
                        self.tokens
                            .refresh_after_rejection(&token)
                            .await
                            .map_err(CallError::Provider)?;
                        attempt -= 1; // A refresh is not a failed attempt.
                        continue;
                    }
                    if status == StatusCode::FORBIDDEN
                        && scope_insufficient(challenge.as_deref(), &text)
                    {
                        return Err(CallError::Provider(missing_scope(method)));
                    }
                    if !retryable(status, &text) {
                        return Err(CallError::Status(status.as_u16(), text));
                    }
                    // A 5xx may come after Google processed the request.
                    if repeat == Repeat::AtMostOnce && status.is_server_error() {
                        return Err(CallError::Ambiguous(format!(
                            "{method}: Google answered {status}"
                        )));
                    }
                    if let Some(wait) = retry_after.filter(|wait| *wait > self.retry_after_max) {
                        tracing::warn!(
                            method,
                            wait_s = wait.as_secs(),
                            max_s = self.retry_after_max.as_secs(),
                            "Google asked to wait longer than GOOGLE_RETRY_AFTER_MAX_S; failing the call"
                        );
                        return Err(CallError::Provider(ProviderError::RateLimited {
                            retry_after: Some(wait),
                        }));
                    }
                    (retry_after, format!("status {status}"))
                }
            };
            if attempt >= self.retry.attempts {
                return Err(CallError::Provider(ProviderError::Unavailable(format!(
                    "{method}: gave up after {attempt} attempts ({reason})"
                ))));
            }
            // Google's `Retry-After` (at most `retry_after_max`, checked above) over our backoff.
            let wait = retry_after.unwrap_or_else(|| self.backoff(attempt));
            tokio::time::sleep(wait).await;
        }
    }

    /// Whether a valid access token can be had (refreshing it if needed).
    pub async fn check_token(&self) -> Result<(), ProviderError> {
        self.tokens.access_token().await.map(|_| ())
    }

    /// The jittered exponential backoff before retry number `attempt` (1-based).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self
            .retry
            .base_delay
            .saturating_mul(1u32 << attempt.min(16).saturating_sub(1));
        let capped = exponential.min(self.retry.max_delay);
        let jitter = rand::rng().random_range(0.5..=1.0);
        capped.mul_f64(jitter)
    }
}

/// 429, 5xx, and 403 for rate limits are worth retrying; other errors are not.
fn retryable(status: StatusCode, body: &str) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
        || (status == StatusCode::FORBIDDEN
            && (body.contains("rateLimitExceeded") || body.contains("userRateLimitExceeded")))
}

/// `Retry-After` as delay-seconds or as an HTTP date (RFC 9110 §10.2.3; IMF-fixdate, which is
/// RFC 2822 syntax), measured from `now`; a date in the past is no wait. `None` when unreadable.
pub(crate) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some(
        at.signed_duration_since(now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// The error for a 401 on a token the endpoint has just issued (or another caller just
/// refreshed): refreshing again cannot help, so the operator is told what to check.
fn rejected_after_refresh(method: &str, body: &str) -> ProviderError {
    let google = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "no reason given".to_owned());
    ProviderError::AuthExpired(format!(
        "Google rejected the access token it had just issued for {method} (401 after a successful \
         refresh: {google}); the account or the OAuth client may be disabled, or the API not \
         enabled for the client's Cloud project: check them in the Google Cloud console, then run \
         `quietbox-api login` again"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_both_forms() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T20:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Tue, 01 Dec 2026 20:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Tue, 01 Dec 2026 19:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
