//! Test-only helpers shared by quietbox's test suites. Never a dependency of production code.
//!
//! [`binary`] runs a quietbox binary as a test subject (the real-binary harness).
//!
//! [`FakeGoogle`] is a real HTTP server on loopback that behaves like Google where quietbox
//! depends on it, following Google's documented request and response shapes (camelCase JSON,
//! string ids, `internalDate` as a string of milliseconds):
//! - Gmail `users.getProfile`, `users.messages.list` (paging with `nextPageToken`,
//!   `resultSizeEstimate`, SPAM and TRASH left out unless `includeSpamTrash`, `q` terms
//!   `from:`, `after:`, `before:`, `newer_than:`, `rfc822msgid:`, `list:`, `in:`/`label:`/`is:`/
//!   `category:` and `-term` combined with AND; any other term is a 400, never ignored),
//!   `users.messages.get` with `format=full|metadata|minimal` (only the requested
//!   `metadataHeaders` with `metadata`), `users.history.list` (404 for a `startHistoryId`
//!   older than what is retained; label changes recorded as `labelsAdded`/`labelsRemoved`),
//!   `users.messages.send`,
//!   `users.messages.batchModify` (empty answer), `users.settings.filters` create, list, get and
//!   delete (400 for a filter that already exists; filters apply to messages added later);
//! - Calendar `freeBusy.query` (400 without `timeMin`/`timeMax`; one entry per requested id,
//!   `errors: [{domain: "global", reason: "notFound"}]` for a calendar it does not have);
//! - the OAuth token endpoint (`refresh_token` and `authorization_code` with PKCE S256 grants,
//!   `invalid_grant` for a revoked refresh token), access tokens that expire (401 after), and
//!   OAuth scopes: each access token carries the scopes granted to its refresh token, and a method
//!   called without one of the scopes Google accepts for it answers 403
//!   `ACCESS_TOKEN_SCOPE_INSUFFICIENT` with `WWW-Authenticate: ... error="insufficient_scope"`;
//! - errors in Google's shape (`{"error": {"code", "message", "errors": [{"domain", "reason",
//!   "message"}], "status"}}`); 401 naming `location: "Authorization"`, `locationType: "header"`
//!   with `WWW-Authenticate: Bearer ... error="invalid_token"`;
//! - per-user quota in units per second (429 `userRateLimitExceeded` in `usageLimits`, with
//!   `Retry-After`, past it; 403 `rateLimitExceeded` on demand), and injectable faults
//!   (latency, 5xx responses, connections closed without an answer, a token endpoint outage),
//!   with call counters per method.
//!
//! [`jwks::JwksServer`] is an identity provider's key set that can go down, and
//! [`one_click::Endpoint`] a loopback HTTPS one-click unsubscribe endpoint counting its POSTs.

pub mod binary;
pub mod capture;
pub mod crash;
mod google_extra;
pub mod jwks;
pub mod one_click;
pub mod redis_server;
pub mod serve;

pub use google_extra::TokenOutage;

/// The API key the real-binary suites configure (`AGENT_API_KEY`): at least 32 bytes, as serve
/// refuses shorter keys. The one place tests take it from.
pub const API_KEY: &str = "quietbox-test-api-key-0123456789abcdef";

/// The HS256 secret the real-binary suites configure (`AUTH_JWT_SECRET`): at least 32 bytes.
pub const JWT_SECRET: &str = "quietbox-test-hs256-secret-0123456789abcdef";

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

/// A message in the fake mailbox.
#[derive(Debug, Clone)]
pub struct FakeMessage {
    /// Gmail id.
    pub id: String,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Label ids (`INBOX`, `UNREAD`, `CATEGORY_PROMOTIONS`…).
    pub labels: Vec<String>,
    /// Milliseconds since the epoch.
    pub internal_date: i64,
}

impl FakeMessage {
    /// A message from `from` with a subject, a date and optional extra headers.
    pub fn new(id: &str, from: &str, internal_date: i64, extra: &[(&str, &str)]) -> Self {
        let mut headers = vec![
            ("From".to_owned(), from.to_owned()),
            ("Subject".to_owned(), format!("message {id}")),
        ];
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        FakeMessage {
            id: id.to_owned(),
            headers,
            labels: vec!["INBOX".into(), "UNREAD".into()],
            internal_date,
        }
    }
}

#[derive(Debug, Clone)]
struct HistoryRecord {
    id: u64,
    added: Vec<String>,
    deleted: Vec<String>,
    relabelled: Vec<Relabel>,
}

/// A label change of one message, in a history record.
#[derive(Debug, Clone)]
struct Relabel {
    id: String,
    added: Vec<String>,
    removed: Vec<String>,
}

/// Scope URLs of Google's OAuth scopes the fake knows.
pub mod scopes {
    /// `gmail.readonly`.
    pub const GMAIL_READONLY: &str = "https://www.googleapis.com/auth/gmail.readonly";
    /// `gmail.send`.
    pub const GMAIL_SEND: &str = "https://www.googleapis.com/auth/gmail.send";
    /// `gmail.modify`.
    pub const GMAIL_MODIFY: &str = "https://www.googleapis.com/auth/gmail.modify";
    /// `gmail.settings.basic`.
    pub const GMAIL_SETTINGS_BASIC: &str = "https://www.googleapis.com/auth/gmail.settings.basic";
    /// `calendar.freebusy`.
    pub const CALENDAR_FREEBUSY: &str = "https://www.googleapis.com/auth/calendar.freebusy";
    /// Full access to the mailbox.
    pub const MAIL_GOOGLE_COM: &str = "https://mail.google.com/";
    /// Every scope quietbox may use: what `refresh-1` is granted unless a test says otherwise.
    pub const ALL: &[&str] = &[
        GMAIL_READONLY,
        GMAIL_SEND,
        GMAIL_MODIFY,
        GMAIL_SETTINGS_BASIC,
        CALENDAR_FREEBUSY,
    ];
    /// What quietbox's `login` asks for by default (no archiving).
    pub const DEFAULT: &[&str] = &[GMAIL_READONLY, GMAIL_SEND, CALENDAR_FREEBUSY];
}

/// The scopes Google accepts for a method (any one of them is enough), from its reference pages.
fn accepted_scopes(method: &str) -> &'static [&'static str] {
    use scopes::*;
    match method {
        "messages.send" => &[GMAIL_SEND, GMAIL_MODIFY, MAIL_GOOGLE_COM],
        "messages.batchModify" => &[GMAIL_MODIFY, MAIL_GOOGLE_COM],
        "settings.filters.create" | "settings.filters.delete" => &[GMAIL_SETTINGS_BASIC],
        "settings.filters.list" | "settings.filters.get" => &[
            GMAIL_READONLY,
            GMAIL_MODIFY,
            GMAIL_SETTINGS_BASIC,
            MAIL_GOOGLE_COM,
        ],
        "freeBusy" => &[
            CALENDAR_FREEBUSY,
            "https://www.googleapis.com/auth/calendar.readonly",
            "https://www.googleapis.com/auth/calendar",
        ],
        _ => &[GMAIL_READONLY, GMAIL_MODIFY, MAIL_GOOGLE_COM],
    }
}

/// Faults to inject.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Added to every API call.
    pub latency: Duration,
    /// The next this-many API calls answer 503.
    pub fail_next: usize,
    /// The next this-many API calls have their connection closed without an answer.
    pub drop_next: usize,
    /// `Retry-After` (seconds) on the 503s of `fail_next`, as Google sends it when it knows.
    pub retry_after: Option<u64>,
    /// The next this-many API calls answer 403 `rateLimitExceeded` (domain `usageLimits`), as
    /// Gmail does for a project's rate limit.
    pub rate_limit_403_next: usize,
}

struct Inner {
    account: String,
    messages: BTreeMap<String, FakeMessage>,
    history: Vec<HistoryRecord>,
    history_id: u64,
    /// History older than this id is forgotten (404).
    oldest_history: u64,
    sent: Vec<Vec<u8>>,
    /// Busy intervals per calendar id (`primary` always exists).
    busy: BTreeMap<String, Vec<(String, String)>>,
    /// Pages of `messages.list` after the first repeat the previous page's last id.
    list_overlap: bool,
    access_tokens: HashMap<String, Instant>,
    /// Scopes of each access token.
    token_scopes: HashMap<String, Vec<String>>,
    refresh_tokens: HashMap<String, bool>,
    /// Scopes granted to each refresh token (inherited by the access tokens it issues).
    refresh_scopes: HashMap<String, Vec<String>>,
    filters: Vec<Value>,
    filter_counter: u64,
    codes: HashMap<String, String>,
    token_lifetime: Duration,
    token_counter: u64,
    quota_per_second: u32,
    /// The per-user quota as a bucket of `quota_per_second` units refilled continuously: (last
    /// refill, units available).
    quota_window: (Instant, f64),
    faults: Faults,
    token_outage: Option<TokenOutage>,
    calls: BTreeMap<String, usize>,
    /// The switches of [`google_extra`].
    extra: google_extra::Extra,
}

/// The fake Google server.
#[derive(Clone)]
pub struct FakeGoogle {
    /// Base URL (`http://127.0.0.1:port`): Gmail is under `/gmail/v1`, Calendar under
    /// `/calendar/v3`, the token endpoint at `/token`.
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

/// Cost of each method in quota units (Gmail's documented costs).
fn cost(method: &str) -> u32 {
    match method {
        "messages.list" | "messages.get" => 5,
        "history.list" => 2,
        "messages.send" => 100,
        "messages.batchModify" => 50,
        "settings.filters.create" | "settings.filters.delete" => 5,
        "getProfile" => 1,
        _ => 1,
    }
}

impl FakeGoogle {
    /// Starts the server for `account` with one valid refresh token, `refresh-1`.
    pub async fn start(account: &str) -> FakeGoogle {
        let inner = Inner {
            account: account.to_owned(),
            messages: BTreeMap::new(),
            history: Vec::new(),
            history_id: 1000,
            oldest_history: 1000,
            sent: Vec::new(),
            busy: BTreeMap::from([("primary".to_owned(), Vec::new())]),
            list_overlap: false,
            access_tokens: HashMap::new(),
            token_scopes: HashMap::new(),
            refresh_tokens: HashMap::from([("refresh-1".to_owned(), true)]),
            refresh_scopes: HashMap::new(),
            filters: Vec::new(),
            filter_counter: 0,
            codes: HashMap::new(),
            token_lifetime: Duration::from_secs(3600),
            token_counter: 0,
            quota_per_second: 250,
            quota_window: (Instant::now(), 250.0),
            faults: Faults::default(),
            token_outage: None,
            calls: BTreeMap::new(),
            extra: google_extra::Extra::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr: SocketAddr = listener.local_addr().expect("local addr");
        let fake = FakeGoogle {
            base: format!("http://{addr}"),
            inner: Arc::new(Mutex::new(inner)),
        };
        let app = Router::new()
            .route("/gmail/v1/users/me/profile", get(profile))
            .route("/gmail/v1/users/me/messages", get(list_messages))
            .route("/gmail/v1/users/me/messages/{id}", get(get_message))
            .route("/gmail/v1/users/me/messages/send", post(send_message))
            .route(
                "/gmail/v1/users/me/messages/batchModify",
                post(batch_modify),
            )
            .route("/gmail/v1/users/me/history", get(list_history))
            .route(
                "/gmail/v1/users/me/settings/filters",
                get(list_filters).post(create_filter),
            )
            .route(
                "/gmail/v1/users/me/settings/filters/{id}",
                get(get_filter).delete(delete_filter),
            )
            .route("/calendar/v3/freeBusy", post(free_busy))
            .route("/token", post(token))
            .layer(axum::middleware::from_fn_with_state(
                fake.clone(),
                google_extra::layer,
            ))
            .with_state(fake.clone());
        serve::spawn(listener, app);
        fake
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds messages (each a new history record) and returns the new history id. The filters
    /// in place apply to them, as Gmail applies filters on delivery.
    pub fn add_messages(&self, messages: Vec<FakeMessage>) -> u64 {
        let mut inner = self.lock();
        for mut message in messages {
            for filter in &inner.filters {
                if filter_matches(filter, &message) {
                    apply_action(&filter["action"], &mut message.labels);
                }
            }
            inner.history_id += 1;
            let id = inner.history_id;
            inner.history.push(HistoryRecord {
                id,
                added: vec![message.id.clone()],
                deleted: vec![],
                relabelled: vec![],
            });
            inner.messages.insert(message.id.clone(), message);
        }
        inner.history_id
    }

    /// Grants `scopes` to a refresh token: access tokens it issues from now on carry them (and
    /// only them). Every refresh token is granted [`scopes::ALL`] unless a test says otherwise.
    pub fn grant_scopes(&self, refresh_token: &str, granted: &[&str]) {
        self.lock().refresh_scopes.insert(
            refresh_token.to_owned(),
            granted.iter().map(|s| s.to_string()).collect(),
        );
    }

    /// The filters (`users.settings.filters` resources), in creation order.
    pub fn filters(&self) -> Vec<Value> {
        self.lock().filters.clone()
    }

    /// The labels of a message.
    pub fn labels(&self, id: &str) -> Option<Vec<String>> {
        self.lock().messages.get(id).map(|m| m.labels.clone())
    }

    /// Deletes messages (each a new history record).
    pub fn delete_messages(&self, ids: &[&str]) {
        let mut inner = self.lock();
        for id in ids {
            if inner.messages.remove(*id).is_some() {
                inner.history_id += 1;
                let hid = inner.history_id;
                inner.history.push(HistoryRecord {
                    id: hid,
                    added: vec![],
                    deleted: vec![id.to_string()],
                    relabelled: vec![],
                });
            }
        }
    }

    /// Forgets history before the current id: older `startHistoryId`s get 404.
    pub fn expire_history(&self) {
        let mut inner = self.lock();
        inner.oldest_history = inner.history_id;
        inner.history.clear();
    }

    /// Busy intervals (RFC 3339 start, end) of the primary calendar.
    pub fn set_busy(&self, busy: &[(&str, &str)]) {
        self.set_calendar_busy("primary", busy);
    }

    /// Busy intervals of calendar `id`, creating it. A freeBusy query for an id that was never
    /// set answers `errors: [{domain: "global", reason: "notFound"}]` for it, as Google does.
    pub fn set_calendar_busy(&self, id: &str, busy: &[(&str, &str)]) {
        self.lock().busy.insert(
            id.to_owned(),
            busy.iter()
                .map(|(s, e)| (s.to_string(), e.to_string()))
                .collect(),
        );
    }

    /// When on, every `messages.list` page after the first repeats the last id of the page
    /// before, as Gmail's pages shift when mail arrives while they are read.
    pub fn set_list_overlap(&self, on: bool) {
        self.lock().list_overlap = on;
    }

    /// Changes the labels of a message (one history record, `labelsAdded`/`labelsRemoved`), as
    /// moving it to TRASH or SPAM in Gmail's interface does.
    pub fn relabel(&self, id: &str, add: &[&str], remove: &[&str]) {
        let mut inner = self.lock();
        let Some(message) = inner.messages.get_mut(id) else {
            return;
        };
        let added: Vec<String> = add
            .iter()
            .filter(|l| !message.labels.iter().any(|have| have == *l))
            .map(|l| l.to_string())
            .collect();
        let removed: Vec<String> = remove
            .iter()
            .filter(|l| message.labels.iter().any(|have| have == *l))
            .map(|l| l.to_string())
            .collect();
        message.labels.retain(|l| !removed.contains(l));
        message.labels.extend(added.iter().cloned());
        inner.history_id += 1;
        let hid = inner.history_id;
        inner.history.push(HistoryRecord {
            id: hid,
            added: vec![],
            deleted: vec![],
            relabelled: vec![Relabel {
                id: id.to_owned(),
                added,
                removed,
            }],
        });
    }

    /// Quota in units per second.
    pub fn set_quota(&self, units_per_second: u32) {
        let mut inner = self.lock();
        inner.quota_per_second = units_per_second;
        inner.quota_window = (Instant::now(), f64::from(units_per_second));
    }

    /// Faults to inject from now on.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Lifetime of access tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().token_lifetime = lifetime;
    }

    /// Expires every access token issued so far.
    pub fn expire_access_tokens(&self) {
        let past = Instant::now() - Duration::from_secs(1);
        for expiry in self.lock().access_tokens.values_mut() {
            *expiry = past;
        }
    }

    /// Issues an access token directly (as if a client had refreshed before the test), with
    /// every scope.
    pub fn issue_access_token(&self) -> String {
        issue(&mut self.lock(), scopes::ALL)
    }

    /// Issues an access token carrying only `granted`.
    pub fn issue_access_token_with_scopes(&self, granted: &[&str]) -> String {
        issue(&mut self.lock(), granted)
    }

    /// Revokes a refresh token: refreshing with it answers `invalid_grant`.
    pub fn revoke_refresh_token(&self, token: &str) {
        self.lock().refresh_tokens.insert(token.to_owned(), false);
    }

    /// Registers an authorization code bound to a PKCE S256 challenge.
    pub fn register_code(&self, code: &str, challenge: &str) {
        self.lock()
            .codes
            .insert(code.to_owned(), challenge.to_owned());
    }

    /// Raw messages sent through `messages.send`.
    pub fn sent(&self) -> Vec<Vec<u8>> {
        self.lock().sent.clone()
    }

    /// Calls per method (`messages.get`, `token`…), including refused ones.
    pub fn calls(&self, method: &str) -> usize {
        self.lock().calls.get(method).copied().unwrap_or(0)
    }

    /// Total API calls (everything but the token endpoint).
    pub fn api_calls(&self) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|(m, _)| *m != "token")
            .map(|(_, n)| n)
            .sum()
    }

    /// The current history id.
    pub fn history_id(&self) -> u64 {
        self.lock().history_id
    }
}

fn issue<S: AsRef<str>>(inner: &mut Inner, granted: &[S]) -> String {
    inner.token_counter += 1;
    let token = format!("access-{}", inner.token_counter);
    let expiry = Instant::now() + inner.token_lifetime;
    inner.access_tokens.insert(token.clone(), expiry);
    inner.token_scopes.insert(
        token.clone(),
        granted.iter().map(|s| s.as_ref().to_owned()).collect(),
    );
    token
}

/// The scopes of a refresh token (every scope unless granted otherwise).
fn refresh_scopes(inner: &Inner, refresh_token: &str) -> Vec<String> {
    inner
        .refresh_scopes
        .get(refresh_token)
        .cloned()
        .unwrap_or_else(|| scopes::ALL.iter().map(|s| s.to_string()).collect())
}

/// Google's answer to a token without the method's scope.
fn insufficient_scope(method: &str) -> Response {
    let message = "Request had insufficient authentication scopes.";
    let body = json!({"error": {"code": 403, "message": message,
        "errors": [{"message": "Insufficient Permission", "domain": "global", "reason": "insufficientPermissions"}],
        "status": "PERMISSION_DENIED",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            "domain": "googleapis.com", "metadata": {"service": "gmail.googleapis.com", "method": method}}]}});
    let challenge = format!(
        "Bearer realm=\"https://accounts.google.com/\", error=\"insufficient_scope\", scope=\"{}\"",
        accepted_scopes(method).join(" ")
    );
    (
        StatusCode::FORBIDDEN,
        [("www-authenticate", challenge)],
        axum::Json(body),
    )
        .into_response()
}

/// Whether a filter's criteria match a message: `from` (a substring of `From`, ignoring case)
/// and `query` of the form `list:<id>` (a substring of `List-Id`), all given ones together.
fn filter_matches(filter: &Value, message: &FakeMessage) -> bool {
    let header = |name: &str| {
        message
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_ascii_lowercase())
            .unwrap_or_default()
    };
    let criteria = &filter["criteria"];
    let from = criteria["from"]
        .as_str()
        .is_none_or(|f| header("From").contains(&f.to_ascii_lowercase()));
    let query = criteria["query"].as_str().is_none_or(|q| {
        q.strip_prefix("list:")
            .is_some_and(|list| header("List-Id").contains(&list.to_ascii_lowercase()))
    });
    from && query && (criteria.get("from").is_some() || criteria.get("query").is_some())
}

/// Applies a filter action's label changes.
fn apply_action(action: &Value, labels: &mut Vec<String>) {
    for remove in action["removeLabelIds"].as_array().into_iter().flatten() {
        labels.retain(|l| Some(l.as_str()) != remove.as_str());
    }
    for add in action["addLabelIds"].as_array().into_iter().flatten() {
        if let Some(add) = add.as_str()
            && !labels.iter().any(|l| l == add)
        {
            labels.push(add.to_owned());
        }
    }
}

/// Google's error shape (<https://developers.google.com/gmail/api/guides/handle-errors>,
/// <https://cloud.google.com/apis/design/errors>): `{"error": {"code", "message", "errors":
/// [{"domain", "reason", "message"}], "status"}}`, domain `global`.
fn google_error(status: StatusCode, reason: &str, message: &str) -> Response {
    google_error_in(status, "global", reason, message)
}

/// [`google_error`] with another `domain` (`usageLimits` for quota errors).
fn google_error_in(status: StatusCode, domain: &str, reason: &str, message: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message,
        "errors": [{"message": message, "domain": domain, "reason": reason}], "status": status_name(status)}});
    (status, axum::Json(body)).into_response()
}

/// The `google.rpc.Code` name Google puts in `error.status` for an HTTP status.
fn status_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        _ => "UNAVAILABLE",
    }
}

/// Google's 401 for a missing, invalid or expired access token: the error names the
/// `Authorization` header as its location, and `WWW-Authenticate` says `invalid_token`.
fn invalid_credentials() -> Response {
    let message = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.";
    let body = json!({"error": {"code": 401, "message": message,
        "errors": [{"message": "Invalid Credentials", "domain": "global", "reason": "authError",
            "location": "Authorization", "locationType": "header"}],
        "status": "UNAUTHENTICATED"}});
    (
        StatusCode::UNAUTHORIZED,
        [(
            "www-authenticate",
            "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
        )],
        axum::Json(body),
    )
        .into_response()
}

/// Counts the call, applies faults, checks the token and the quota. `Err` is the answer.
async fn admit(fake: &FakeGoogle, headers: &HeaderMap, method: &str) -> Result<(), Response> {
    let (latency, fault) = {
        let mut inner = fake.lock();
        *inner.calls.entry(method.to_owned()).or_default() += 1;
        if inner.faults.rate_limit_403_next > 0 {
            inner.faults.rate_limit_403_next -= 1;
            return Err(google_error_in(
                StatusCode::FORBIDDEN,
                "usageLimits",
                "rateLimitExceeded",
                "Rate Limit Exceeded",
            ));
        }
        let fault = if inner.faults.drop_next > 0 {
            inner.faults.drop_next -= 1;
            Some(true)
        } else if inner.faults.fail_next > 0 {
            inner.faults.fail_next -= 1;
            Some(false)
        } else {
            None
        };
        (
            inner.faults.latency,
            fault.map(|drop| (drop, inner.faults.retry_after)),
        )
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        // Dropping: the connection is closed without an answer.
        Some((true, _)) => return Err(serve::dropped()),
        Some((false, retry_after)) => {
            let mut response = google_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "backendError",
                "Backend Error",
            );
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, seconds.into());
            }
            return Err(response);
        }
        None => {}
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let mut inner = fake.lock();
    let valid = inner
        .access_tokens
        .get(&token)
        .is_some_and(|expiry| *expiry > Instant::now());
    if !valid {
        return Err(invalid_credentials());
    }
    let granted = inner.token_scopes.get(&token);
    let allowed = accepted_scopes(method)
        .iter()
        .any(|s| granted.is_some_and(|g| g.iter().any(|have| have == s)));
    if !allowed {
        return Err(insufficient_scope(method));
    }
    let units = f64::from(cost(method));
    let rate = f64::from(inner.quota_per_second.max(1));
    let now = Instant::now();
    let refill = now.duration_since(inner.quota_window.0).as_secs_f64() * rate;
    inner.quota_window = (now, (inner.quota_window.1 + refill).min(rate));
    if inner.quota_window.1 < units {
        // Gmail's per-user limit: 429 `userRateLimitExceeded` in `usageLimits`, with
        // `Retry-After` the whole seconds until the call's units are back.
        let wait = ((units - inner.quota_window.1) / rate).ceil().max(1.0) as u64;
        let mut response = google_error_in(
            StatusCode::TOO_MANY_REQUESTS,
            "usageLimits",
            "userRateLimitExceeded",
            "User-rate limit exceeded.",
        );
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, wait.into());
        return Err(response);
    }
    inner.quota_window.1 -= units;
    Ok(())
}

async fn profile(State(fake): State<FakeGoogle>, headers: HeaderMap) -> Response {
    if let Err(r) = admit(&fake, &headers, "getProfile").await {
        return r;
    }
    let inner = fake.lock();
    axum::Json(
        json!({"emailAddress": inner.account, "messagesTotal": inner.messages.len(),
        "threadsTotal": inner.messages.len(), "historyId": inner.history_id.to_string()}),
    )
    .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    page_token: Option<String>,
    max_results: Option<usize>,
    q: Option<String>,
    include_spam_trash: Option<bool>,
}

/// One term of Gmail's search syntax the fake applies (the others are refused with 400, so a
/// query the fake cannot honour fails loudly rather than matching everything).
#[derive(Debug, Clone, PartialEq)]
enum Term {
    /// `from:x`: `x` in `From`, ignoring case.
    From(String),
    /// `after:<epoch s | yyyy/mm/dd>`: at or after.
    After(i64),
    /// `before:<epoch s | yyyy/mm/dd>`: before.
    Before(i64),
    /// `newer_than:<n>d|m|y`: within that many days, months or years of now.
    NewerThan(i64),
    /// `rfc822msgid:<id>`: the `Message-ID`, with or without angle brackets.
    MessageId(String),
    /// `list:x`: `x` in `List-Id`.
    List(String),
    /// `in:x`, `label:x`, `category:x`, `is:unread`: a label id.
    Label(String),
    /// `-term`: not the term.
    Not(Box<Term>),
}

/// Seconds since the epoch of a date operand: epoch seconds, or `yyyy/mm/dd` (UTC midnight).
fn date_operand(value: &str) -> Option<i64> {
    if let Ok(secs) = value.parse::<i64>() {
        return Some(secs);
    }
    let mut parts = value.split(['/', '-']).map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400)
}

/// The terms of `q` (combined with AND), or the term that cannot be read.
fn parse_query(q: &str, now_secs: i64) -> Result<Vec<Term>, String> {
    q.split_whitespace()
        .map(|word| {
            let (negated, word) = match word.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, word),
            };
            let (op, value) = word.split_once(':').ok_or_else(|| word.to_owned())?;
            let value = value.trim_matches('"');
            let term = match op.to_ascii_lowercase().as_str() {
                "from" => Term::From(value.to_ascii_lowercase()),
                "after" => Term::After(date_operand(value).ok_or_else(|| word.to_owned())?),
                "before" => Term::Before(date_operand(value).ok_or_else(|| word.to_owned())?),
                "newer_than" => {
                    let (n, unit) = value.split_at(value.len().saturating_sub(1));
                    let n: i64 = n.parse().map_err(|_| word.to_owned())?;
                    let day = 86_400;
                    let span = match unit {
                        "d" => n * day,
                        "m" => n * 30 * day,
                        "y" => n * 365 * day,
                        _ => return Err(word.to_owned()),
                    };
                    Term::NewerThan(now_secs - span)
                }
                "rfc822msgid" => {
                    Term::MessageId(value.trim_matches(|c| c == '<' || c == '>').to_owned())
                }
                "list" => Term::List(value.to_ascii_lowercase()),
                "in" | "label" | "is" => Term::Label(match value.to_ascii_lowercase().as_str() {
                    "drafts" => "DRAFT".to_owned(),
                    other => other.to_ascii_uppercase().replace('-', "_"),
                }),
                "category" => Term::Label(format!("CATEGORY_{}", value.to_ascii_uppercase())),
                _ => return Err(word.to_owned()),
            };
            Ok(if negated {
                Term::Not(Box::new(term))
            } else {
                term
            })
        })
        .collect()
}

/// Whether `message` matches every term.
fn query_matches(terms: &[Term], message: &FakeMessage) -> bool {
    terms.iter().all(|term| term_matches(term, message))
}

/// Whether `message` matches `term`.
fn term_matches(term: &Term, message: &FakeMessage) -> bool {
    let header = |name: &str| {
        message
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let secs = message.internal_date.div_euclid(1000);
    match term {
        Term::From(from) => header("From").to_ascii_lowercase().contains(from),
        Term::After(t) => secs >= *t,
        Term::Before(t) => secs < *t,
        Term::NewerThan(t) => secs >= *t,
        Term::MessageId(id) => {
            header("Message-ID").trim_matches(|c: char| c == '<' || c == '>' || c.is_whitespace())
                == id
        }
        Term::List(list) => header("List-Id").to_ascii_lowercase().contains(list),
        Term::Label(label) => message.labels.iter().any(|l| l == label),
        Term::Not(term) => !term_matches(term, message),
    }
}

async fn list_messages(
    State(fake): State<FakeGoogle>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    if let Err(r) = admit(&fake, &headers, "messages.list").await {
        return r;
    }
    let inner = fake.lock();
    let size = query.max_results.unwrap_or(100).clamp(1, 500);
    let mut offset: usize = query
        .page_token
        .as_deref()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let terms = match parse_query(query.q.as_deref().unwrap_or_default(), now_secs) {
        Ok(terms) => terms,
        Err(word) => {
            return google_error(
                StatusCode::BAD_REQUEST,
                "invalidArgument",
                &format!("Invalid query term (the fake Google does not know it): {word}"),
            );
        }
    };
    // Newest first, as Gmail lists them; SPAM and TRASH only when asked (`includeSpamTrash`).
    let with_spam_trash = query.include_spam_trash.unwrap_or(false);
    let mut all: Vec<&FakeMessage> = inner
        .messages
        .values()
        .filter(|m| with_spam_trash || !m.labels.iter().any(|l| l == "SPAM" || l == "TRASH"))
        .filter(|m| query_matches(&terms, m))
        .collect();
    all.sort_by(|a, b| {
        b.internal_date
            .cmp(&a.internal_date)
            .then_with(|| a.id.cmp(&b.id))
    });
    let next = offset + size;
    if inner.list_overlap && offset > 0 {
        offset -= 1;
    }
    let page: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(next - offset)
        .map(|m| json!({"id": m.id, "threadId": m.id}))
        .collect();
    let mut body = json!({"resultSizeEstimate": all.len()});
    if !page.is_empty() {
        body["messages"] = Value::Array(page);
    }
    if next < all.len() {
        body["nextPageToken"] = Value::String(next.to_string());
    }
    axum::Json(body).into_response()
}

async fn get_message(
    State(fake): State<FakeGoogle>,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw_query: axum::extract::RawQuery,
) -> Response {
    if let Err(r) = admit(&fake, &headers, "messages.get").await {
        return r;
    }
    // metadataHeaders repeats: ?format=metadata&metadataHeaders=From&metadataHeaders=Subject
    let raw_query = raw_query.0.unwrap_or_default();
    let wanted: Vec<String> = raw_query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("metadataHeaders="))
        .map(|v| v.replace("%20", " ").to_ascii_lowercase())
        .collect();
    // `format` is `full` unless given; `metadataHeaders` applies to `metadata` only.
    let format = raw_query
        .split('&')
        .find_map(|pair| pair.strip_prefix("format="))
        .unwrap_or("full")
        .to_ascii_lowercase();
    if !["full", "metadata", "minimal"].contains(&format.as_str()) {
        return google_error(
            StatusCode::BAD_REQUEST,
            "invalidArgument",
            &format!(
                "Invalid value at 'format' ({format}): the fake knows full, metadata and minimal"
            ),
        );
    }
    let inner = fake.lock();
    let Some(message) = inner.messages.get(&id) else {
        return google_error(
            StatusCode::NOT_FOUND,
            "notFound",
            "Requested entity was not found.",
        );
    };
    let headers: Vec<Value> = message
        .headers
        .iter()
        .filter(|(name, _)| {
            format != "metadata" || wanted.is_empty() || wanted.contains(&name.to_ascii_lowercase())
        })
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    let mut body = json!({"id": message.id, "threadId": message.id, "labelIds": message.labels, "snippet": "",
        "historyId": inner.history_id.to_string(), "internalDate": message.internal_date.to_string(),
        "sizeEstimate": 1024});
    match format.as_str() {
        // Only the id and labels: no headers, no payload.
        "minimal" => {}
        "metadata" => {
            body["payload"] = json!({"mimeType": "text/plain", "headers": headers});
        }
        _ => {
            body["payload"] = json!({"partId": "", "mimeType": "text/plain", "filename": "",
                "headers": headers, "body": {"size": 0}});
        }
    }
    axum::Json(body).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoryQuery {
    start_history_id: Option<String>,
    page_token: Option<String>,
    max_results: Option<usize>,
}

async fn list_history(
    State(fake): State<FakeGoogle>,
    headers: HeaderMap,
    Query(query): Query<HistoryQuery>,
) -> Response {
    if let Err(r) = admit(&fake, &headers, "history.list").await {
        return r;
    }
    let inner = fake.lock();
    let Some(start) = query
        .start_history_id
        .as_deref()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "invalidArgument",
            "startHistoryId is required",
        );
    };
    if start < inner.oldest_history {
        return google_error(
            StatusCode::NOT_FOUND,
            "notFound",
            "Requested entity was not found.",
        );
    }
    let records: Vec<&HistoryRecord> = inner.history.iter().filter(|h| h.id > start).collect();
    let size = query.max_results.unwrap_or(100).clamp(1, 500);
    let offset: usize = query
        .page_token
        .as_deref()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = records
        .iter()
        .skip(offset)
        .take(size)
        .map(|h| {
            let added: Vec<Value> = h
                .added
                .iter()
                .map(|id| json!({"message": {"id": id, "threadId": id, "labelIds": inner.messages.get(id).map(|m| m.labels.clone()).unwrap_or_default()}}))
                .collect();
            let deleted: Vec<Value> = h.deleted.iter().map(|id| json!({"message": {"id": id, "threadId": id}})).collect();
            let mut record = json!({"id": h.id.to_string()});
            if !added.is_empty() {
                record["messagesAdded"] = Value::Array(added);
            }
            let relabel = |pick: fn(&Relabel) -> &Vec<String>| -> Vec<Value> {
                h.relabelled
                    .iter()
                    .filter(|change| !pick(change).is_empty())
                    .map(|change| {
                        let labels = inner.messages.get(&change.id).map(|m| m.labels.clone()).unwrap_or_default();
                        json!({"message": {"id": change.id, "threadId": change.id, "labelIds": labels}, "labelIds": pick(change)})
                    })
                    .collect()
            };
            let (labels_added, labels_removed) = (relabel(|c| &c.added), relabel(|c| &c.removed));
            if !labels_added.is_empty() {
                record["labelsAdded"] = Value::Array(labels_added);
            }
            if !labels_removed.is_empty() {
                record["labelsRemoved"] = Value::Array(labels_removed);
            }
            if !deleted.is_empty() {
                record["messagesDeleted"] = Value::Array(deleted);
            }
            record
        })
        .collect();
    let mut body = json!({"historyId": inner.history_id.to_string()});
    if !page.is_empty() {
        body["history"] = Value::Array(page);
    }
    if offset + size < records.len() {
        body["nextPageToken"] = Value::String((offset + size).to_string());
    }
    axum::Json(body).into_response()
}

async fn send_message(
    State(fake): State<FakeGoogle>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    if let Err(r) = admit(&fake, &headers, "messages.send").await {
        return r;
    }
    let Some(raw) = body.get("raw").and_then(Value::as_str) else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "invalidArgument",
            "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
        );
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE
        .decode(raw)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw))
    else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "invalidArgument",
            "Invalid value for ByteString",
        );
    };
    let mut inner = fake.lock();
    inner.sent.push(bytes);
    let id = format!("sent-{}", inner.sent.len());
    axum::Json(json!({"id": id, "threadId": id, "labelIds": ["SENT"]})).into_response()
}

/// `users.messages.batchModify`: label changes on up to 1000 messages; an empty answer.
async fn batch_modify(
    State(fake): State<FakeGoogle>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    if let Err(r) = admit(&fake, &headers, "messages.batchModify").await {
        return r;
    }
    let ids: Vec<String> = body["ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    if ids.is_empty() || ids.len() > 1000 {
        return google_error(
            StatusCode::BAD_REQUEST,
            "invalidArgument",
            "ids must hold 1 to 1000 message ids",
        );
    }
    let strings = |key: &str| -> Vec<String> {
        body[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let (add, remove) = (strings("addLabelIds"), strings("removeLabelIds"));
    let mut inner = fake.lock();
    let mut changes = Vec::new();
    for id in ids {
        let Some(message) = inner.messages.get_mut(&id) else {
            continue;
        };
        let added: Vec<String> = add
            .iter()
            .filter(|l| !message.labels.contains(l))
            .cloned()
            .collect();
        let removed: Vec<String> = remove
            .iter()
            .filter(|l| message.labels.contains(l))
            .cloned()
            .collect();
        message.labels.retain(|l| !removed.contains(l));
        message.labels.extend(added.iter().cloned());
        if !added.is_empty() || !removed.is_empty() {
            changes.push(Relabel { id, added, removed });
        }
    }
    if !changes.is_empty() {
        inner.history_id += 1;
        let hid = inner.history_id;
        inner.history.push(HistoryRecord {
            id: hid,
            added: vec![],
            deleted: vec![],
            relabelled: changes,
        });
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn list_filters(State(fake): State<FakeGoogle>, headers: HeaderMap) -> Response {
    if let Err(r) = admit(&fake, &headers, "settings.filters.list").await {
        return r;
    }
    let inner = fake.lock();
    // Like Gmail, an empty list is an empty object: the `filter` field is absent.
    let mut body = json!({});
    if !inner.filters.is_empty() {
        body["filter"] = Value::Array(inner.filters.clone());
    }
    axum::Json(body).into_response()
}

async fn get_filter(
    State(fake): State<FakeGoogle>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = admit(&fake, &headers, "settings.filters.get").await {
        return r;
    }
    let inner = fake.lock();
    match inner.filters.iter().find(|f| f["id"] == id.as_str()) {
        Some(filter) => axum::Json(filter.clone()).into_response(),
        None => google_error(StatusCode::NOT_FOUND, "notFound", "Filter not found"),
    }
}

async fn create_filter(
    State(fake): State<FakeGoogle>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    if let Err(r) = admit(&fake, &headers, "settings.filters.create").await {
        return r;
    }
    let criteria = body["criteria"].clone();
    let action = body["action"].clone();
    let has_criteria = criteria.as_object().is_some_and(|c| !c.is_empty());
    let has_action = action.as_object().is_some_and(|a| !a.is_empty());
    if !has_criteria || !has_action {
        return google_error(
            StatusCode::BAD_REQUEST,
            "invalidArgument",
            "Filter doesn't have any criteria or action",
        );
    }
    let mut inner = fake.lock();
    if inner
        .filters
        .iter()
        .any(|f| f["criteria"] == criteria && f["action"] == action)
    {
        return google_error(
            StatusCode::BAD_REQUEST,
            "failedPrecondition",
            "Filter already exists",
        );
    }
    inner.filter_counter += 1;
    let filter = json!({"id": format!("ANe1Bmj{:06}", inner.filter_counter), "criteria": criteria, "action": action});
    inner.filters.push(filter.clone());
    axum::Json(filter).into_response()
}

async fn delete_filter(
    State(fake): State<FakeGoogle>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = admit(&fake, &headers, "settings.filters.delete").await {
        return r;
    }
    let mut inner = fake.lock();
    let before = inner.filters.len();
    inner.filters.retain(|f| f["id"] != id.as_str());
    if inner.filters.len() == before {
        return google_error(StatusCode::NOT_FOUND, "notFound", "Filter not found");
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn free_busy(
    State(fake): State<FakeGoogle>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    if let Err(r) = admit(&fake, &headers, "freeBusy").await {
        return r;
    }
    // `timeMin` and `timeMax` are required (Calendar's freeBusy.query reference).
    for field in ["timeMin", "timeMax"] {
        let given = body
            .get(field)
            .and_then(Value::as_str)
            .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok());
        if !given {
            let mut response = google_error(
                StatusCode::BAD_REQUEST,
                "required",
                &format!("Missing {field} parameter."),
            );
            if body.get(field).is_some() {
                response = google_error(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    &format!("Bad Request: {field} is not an RFC 3339 date-time."),
                );
            }
            return response;
        }
    }
    let inner = fake.lock();
    // One entry per requested id: its busy time, or `notFound` for a calendar that is not there.
    let mut calendars = serde_json::Map::new();
    for item in body["items"].as_array().into_iter().flatten() {
        let Some(id) = item["id"].as_str() else {
            continue;
        };
        let entry = match inner.busy.get(id) {
            Some(busy) => {
                let busy: Vec<Value> = busy
                    .iter()
                    .map(|(s, e)| json!({"start": s, "end": e}))
                    .collect();
                json!({"busy": busy})
            }
            None => json!({"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}),
        };
        calendars.insert(id.to_owned(), entry);
    }
    axum::Json(json!({"kind": "calendar#freeBusy", "timeMin": body.get("timeMin"), "timeMax": body.get("timeMax"),
        "calendars": calendars}))
    .into_response()
}

async fn token(
    State(fake): State<FakeGoogle>,
    axum::extract::Form(form): axum::extract::Form<HashMap<String, String>>,
) -> Response {
    let mut inner = fake.lock();
    *inner.calls.entry("token".to_owned()).or_default() += 1;
    if let Some(outage) = inner.token_outage {
        return google_extra::token_outage_answer(outage);
    }
    let invalid_grant = || {
        (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}))).into_response()
    };
    match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {
            let valid = form
                .get("refresh_token")
                .and_then(|t| inner.refresh_tokens.get(t))
                .copied()
                .unwrap_or(false);
            if !valid {
                return invalid_grant();
            }
        }
        Some("authorization_code") => {
            let Some(challenge) = form.get("code").and_then(|c| inner.codes.remove(c)) else {
                return invalid_grant();
            };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            use sha2::Digest;
            let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(verifier.as_bytes()));
            if computed != challenge {
                return invalid_grant();
            }
            let granted = refresh_scopes(&inner, "refresh-from-code");
            let access = issue(&mut inner, &granted);
            inner
                .refresh_tokens
                .insert("refresh-from-code".into(), true);
            let lifetime = inner.token_lifetime.as_secs();
            return axum::Json(json!({"access_token": access, "expires_in": lifetime, "refresh_token": "refresh-from-code",
                "token_type": "Bearer", "scope": granted.join(" ")})).into_response();
        }
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "unsupported_grant_type"})),
            )
                .into_response();
        }
    }
    let granted = refresh_scopes(
        &inner,
        form.get("refresh_token").map(String::as_str).unwrap_or(""),
    );
    let access = issue(&mut inner, &granted);
    let lifetime = inner.token_lifetime.as_secs();
    axum::Json(
        json!({"access_token": access, "expires_in": lifetime, "token_type": "Bearer",
        "scope": granted.join(" ")}),
    )
    .into_response()
}
