//! Extra switches on [`FakeGoogle`](crate::FakeGoogle) for the hardening tests (issues 11 and
//! 22), kept apart from the server itself. The issue-22 ones act in [`layer`], a middleware in
//! front of every route: sends stored and then dropped, `Retry-After` answers in any form, 401s
//! on freshly issued tokens, token endpoint refusals, and `messages.list` over the sent mail
//! (`labelIds=SENT` with `q=rfc822msgid:<id>`), as Gmail answers it.

use std::collections::VecDeque;

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::FakeGoogle;

/// State of the issue-22 switches (a field of the fake's state).
#[derive(Debug, Default)]
pub(crate) struct Extra {
    /// Sends still to be stored and then have their connection closed.
    drop_after_send: usize,
    /// Answers for the next API calls: a status with its `Retry-After` value.
    retry_after_faults: VecDeque<(StatusCode, String)>,
    /// Every API call answers 401, though the token endpoint keeps issuing tokens.
    reject_access_tokens: bool,
    /// The token endpoint's refusal (status and JSON body) for every request.
    token_refusal: Option<(StatusCode, Value)>,
}

/// How the token endpoint fails during an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOutage {
    /// Every refresh has its connection closed without an answer.
    Unreachable,
    /// Every refresh answers 503 with an HTML page, as Google's front end does when overloaded.
    Unavailable,
}

impl FakeGoogle {
    /// Accepts `token` as a refresh token too (tests use distinctive values to look for in logs).
    pub fn add_refresh_token(&self, token: &str) {
        self.lock().refresh_tokens.insert(token.to_owned(), true);
    }

    /// Takes the token endpoint down (`Some`) or brings it back (`None`). The API keeps
    /// answering; calls made with an expired access token get 401 as usual.
    pub fn set_token_outage(&self, outage: Option<TokenOutage>) {
        self.lock().token_outage = outage;
    }

    /// The next `count` `messages.send` calls store the message (it is sent) and then close the
    /// connection without an answer, as a connection lost after Google processed the request.
    pub fn drop_after_send(&self, count: usize) {
        self.lock().extra.drop_after_send = count;
    }

    /// The next `count` API calls answer `status` (429 `rateLimitExceeded`, or 503
    /// `backendError`) with `Retry-After: <retry_after>` exactly as given (seconds or an HTTP
    /// date).
    pub fn fail_with_retry_after(&self, count: usize, status: u16, retry_after: &str) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut inner = self.lock();
        for _ in 0..count {
            inner
                .extra
                .retry_after_faults
                .push_back((status, retry_after.to_owned()));
        }
    }

    /// With `true`, every API call answers 401 (Google's body and `WWW-Authenticate`) while the
    /// token endpoint keeps issuing tokens: a token rejected right after its refresh.
    pub fn reject_access_tokens(&self, reject: bool) {
        self.lock().extra.reject_access_tokens = reject;
    }

    /// Makes the token endpoint refuse every request with `status` and the JSON `body` (e.g.
    /// `{"error": "invalid_client", "error_description": "The OAuth client was not found."}`);
    /// `None` restores it.
    pub fn refuse_tokens(&self, refusal: Option<(u16, Value)>) {
        self.lock().extra.token_refusal = refusal.map(|(status, body)| {
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                body,
            )
        });
    }
}

/// The middleware in front of every route of the fake (see the module documentation).
pub(crate) async fn layer(
    State(fake): State<FakeGoogle>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let api = path.starts_with("/gmail/") || path.starts_with("/calendar/");
    {
        let mut inner = fake.lock();
        if path == "/token"
            && let Some((status, body)) = inner.extra.token_refusal.clone()
        {
            *inner.calls.entry("token".to_owned()).or_default() += 1;
            return (status, axum::Json(body)).into_response();
        }
        if api && inner.extra.reject_access_tokens {
            let body = json!({"error": {"code": 401,
                "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
                "errors": [{"message": "Invalid Credentials", "domain": "global", "reason": "authError",
                    "location": "Authorization", "locationType": "header"}],
                "status": "UNAUTHENTICATED"}});
            return (
                StatusCode::UNAUTHORIZED,
                [(
                    "www-authenticate",
                    "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
                )],
                axum::Json(body),
            )
                .into_response();
        }
        if api && let Some((status, retry_after)) = inner.extra.retry_after_faults.pop_front() {
            let reason = if status == StatusCode::TOO_MANY_REQUESTS {
                "rateLimitExceeded"
            } else {
                "backendError"
            };
            let mut response = crate::google_error(status, reason, "Try again later.");
            if let Ok(value) = retry_after.parse() {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, value);
            }
            return response;
        }
    }
    if path == "/gmail/v1/users/me/messages"
        && request.method() == axum::http::Method::GET
        && let Some(id) = sent_lookup(&request)
    {
        if let Err(refused) = crate::admit(&fake, request.headers(), "messages.list").await {
            return refused;
        }
        return sent_matching(&fake, &id);
    }
    let is_send = path == "/gmail/v1/users/me/messages/send";
    let response = next.run(request).await;
    if is_send && response.status().is_success() {
        let mut inner = fake.lock();
        if inner.extra.drop_after_send > 0 {
            inner.extra.drop_after_send -= 1;
            return crate::serve::dropped();
        }
    }
    response
}

/// The Message-ID a `messages.list` looks for in the sent mail: `labelIds=SENT` (or `in:sent`
/// in `q`) with an `rfc822msgid:` term in `q`.
fn sent_lookup(request: &Request) -> Option<String> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(request.uri()).ok()?;
    let q = pairs
        .iter()
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.as_str())?;
    let sent = pairs.iter().any(|(k, v)| k == "labelIds" && v == "SENT")
        || q.split_whitespace()
            .any(|t| t.eq_ignore_ascii_case("in:sent"));
    let id = q
        .split_whitespace()
        .find_map(|t| t.strip_prefix("rfc822msgid:"))?;
    sent.then(|| bare_id(id))
}

/// A Message-ID without its angle brackets.
fn bare_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

/// The `Message-ID` header of a raw message, if it has one.
fn message_id(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let headers = text.split("\r\n\r\n").next().unwrap_or_default();
    headers.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("message-id")
            .then(|| bare_id(value))
    })
}

/// `messages.list`'s answer: the sent messages whose `Message-ID` is `id` (ids as
/// `messages.send` gave them).
fn sent_matching(fake: &FakeGoogle, id: &str) -> Response {
    let inner = fake.lock();
    let found: Vec<Value> = inner
        .sent
        .iter()
        .enumerate()
        .filter(|(_, raw)| message_id(raw).as_deref() == Some(id))
        .map(|(i, _)| json!({"id": format!("sent-{}", i + 1), "threadId": format!("sent-{}", i + 1)}))
        .collect();
    let mut body = json!({"resultSizeEstimate": found.len()});
    if !found.is_empty() {
        body["messages"] = Value::Array(found);
    }
    axum::Json(body).into_response()
}

/// The token endpoint's answer during `outage`.
pub(crate) fn token_outage_answer(outage: TokenOutage) -> Response {
    match outage {
        TokenOutage::Unreachable => crate::serve::dropped(),
        TokenOutage::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "text/html; charset=UTF-8")],
            "<html><head><title>503 Service Unavailable</title></head><body>Service Unavailable</body></html>",
        )
            .into_response(),
    }
}
