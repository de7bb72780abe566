//! One call to a Google API, done the way Google asks: quota units taken from the bucket first,
//! a fresh token, a refresh and one retry after a 401, jittered exponential backoff on 429, on
//! 403 `rateLimitExceeded`/`userRateLimitExceeded`, on 5xx and on dropped connections (honouring
//! `Retry-After`), and `gmail_requests_total{method,status}` counted for every attempt. A 403 for
//! a token without the method's OAuth scope becomes [`ProviderError::MissingScope`], naming it.

use std::sync::Arc;
use std::time::Duration;

use quietbox_core::ports::ProviderError;
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::login::{
    CALENDAR_FREEBUSY, GMAIL_MODIFY, GMAIL_READONLY, GMAIL_SEND, GMAIL_SETTINGS_BASIC,
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

/// A call that ended without a usable answer.
#[derive(Debug)]
pub(crate) enum CallError {
    /// Google answered this status (after retries where they apply).
    Status(u16, String),
    /// Something else (auth, network after retries).
    Provider(ProviderError),
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
        }
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
                    (None, format!("connection: {error}"))
                }
                Ok(response) => {
                    let status = response.status();
                    metrics::counter!("gmail_requests_total", "method" => method, "status" => status.as_u16().to_string()).increment(1);
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(Duration::from_secs);
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
                    if status == StatusCode::UNAUTHORIZED && !refreshed {
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
                    (retry_after, format!("status {status}"))
                }
            };
            if attempt >= self.retry.attempts {
                return Err(CallError::Provider(ProviderError::Unavailable(format!(
                    "{method}: gave up after {attempt} attempts ({reason})"
                ))));
            }
            // Google's `Retry-After` is honoured up to the backoff cap, so one answer cannot
            // hold a request for hours.
            let wait = retry_after.map_or_else(
                || self.backoff(attempt),
                |wait| wait.min(self.retry.max_delay),
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Whether a valid access token can be had (refreshing it if needed).
    pub async fn check_token(&self) -> Result<(), ProviderError> {
        self.tokens.access_token().await.map(|_| ())
    }

    fn backoff(&self, attempt: u32) -> Duration {
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
