//! Start-up without the IdP or Google: a binary whose authorization server (`MCP_OAUTH_ISSUER`)
//! or Google account is unreachable at start serves anyway. `/health` answers 200, `/ready`
//! answers 503 naming what is missing, protected calls answer 503 (the IdP) or 502 (Google),
//! and a background task retries with capped exponential backoff until the dependency answers;
//! then the binary serves normally, without a restart. Each failed attempt is logged and counted
//! in `dependency_failures_total{dependency}` (two label values: `oauth_issuer`, `google`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use quietbox_auth::{PROTECTED_RESOURCE_PATH, ProtectedResourceMetadata};
use quietbox_core::ErrorCode;
use quietbox_core::ports::{
    ArchiveOutcome, MailProvider, OutgoingMail, ProviderError, ScanBatch, ScanProgress,
    ScanRequest, SentMail,
};
use quietbox_core::store::SubscriptionKey;
use quietbox_gmail::google::GmailProvider;
use tower::ServiceExt;

use crate::problem::ApiError;

use super::App;

/// A dependency a binary can start without and waits for in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dependency {
    /// The OAuth authorization server (`MCP_OAUTH_ISSUER`), whose metadata names the keys that
    /// sign access tokens.
    OAuthIssuer,
    /// Google: the OAuth token refresh and the Gmail account profile.
    Google,
}

impl Dependency {
    /// The name in `/ready`, logs and the `dependency` metric label.
    pub fn name(self) -> &'static str {
        match self {
            Dependency::OAuthIssuer => "oauth_issuer",
            Dependency::Google => "google",
        }
    }
}

/// The first wait between two attempts to reach a missing dependency.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
pub const RETRY_MAX: Duration = Duration::from_secs(60);

/// Capped exponential backoff: [`RETRY_FIRST`], doubling, at most [`RETRY_MAX`].
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(RETRY_FIRST, RETRY_MAX)
    }
}

impl Backoff {
    /// Waits of `first`, doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff { next: first, max }
    }

    /// The wait before the next attempt (and doubles the one after).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next.min(self.max);
        self.next = delay.saturating_mul(2).min(self.max);
        delay
    }
}

/// Which dependencies are not reachable yet, each with its last error (shown by `/ready`).
#[derive(Debug, Default)]
pub struct Readiness {
    missing: Mutex<BTreeMap<Dependency, String>>,
}

impl Readiness {
    /// The missing dependencies and their last errors, in a stable order.
    pub fn missing(&self) -> Vec<(Dependency, String)> {
        self.lock()
            .iter()
            .map(|(d, detail)| (*d, detail.clone()))
            .collect()
    }

    /// Whether `dependency` is missing.
    pub fn is_missing(&self, dependency: Dependency) -> bool {
        self.lock().contains_key(&dependency)
    }

    /// The last error of `dependency`, when it is missing.
    pub fn detail(&self, dependency: Dependency) -> Option<String> {
        self.lock().get(&dependency).cloned()
    }

    /// Records a failed attempt: marks `dependency` missing, logs and counts it.
    pub fn failed(&self, dependency: Dependency, detail: String, retry_in: Duration) {
        metrics::counter!("dependency_failures_total", "dependency" => dependency.name())
            .increment(1);
        tracing::warn!(
            dependency = dependency.name(),
            retry_in_s = retry_in.as_secs(),
            "{} unreachable, serving without it and retrying: {detail}",
            dependency.name()
        );
        self.lock().insert(dependency, detail);
    }

    /// Records that `dependency` answered.
    pub fn recovered(&self, dependency: Dependency) {
        if self.lock().remove(&dependency).is_some() {
            tracing::info!(
                dependency = dependency.name(),
                "{} reachable again",
                dependency.name()
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Dependency, String>> {
        self.missing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The `/ready` refusal while something is missing: 503 problem+json whose `missing` lists
    /// the dependencies by name and `detail` says why.
    pub fn not_ready(&self) -> Option<Response> {
        let missing = self.missing();
        if missing.is_empty() {
            return None;
        }
        let detail = missing
            .iter()
            .map(|(d, why)| format!("{} unreachable: {why}", d.name()))
            .collect::<Vec<_>>()
            .join("; ");
        let names: Vec<&str> = missing.iter().map(|(d, _)| d.name()).collect();
        Some(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NotReady,
            &format!("not ready: {detail}"),
            &names,
        ))
    }
}

/// A problem+json answer with the `missing` dependencies named, and `Retry-After`.
fn problem(status: StatusCode, code: ErrorCode, detail: &str, missing: &[&str]) -> Response {
    let body = serde_json::json!({
        "type": format!("{}{}", crate::problem::PROBLEM_TYPE_BASE, code.name()),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "code": code.name(),
        "missing": missing,
    });
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    headers.insert(
        header::RETRY_AFTER,
        HeaderValue::from(RETRY_FIRST.as_secs()),
    );
    response.extensions_mut().insert(code);
    response
}

/// Calls `attempt` until it succeeds, waiting [`Backoff`] between failures, each recorded in
/// `readiness`; marks `dependency` recovered and returns the value.
pub async fn retry<T, E, F, Fut>(
    readiness: &Readiness,
    dependency: Dependency,
    mut backoff: Backoff,
    mut attempt: F,
) -> T
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    loop {
        let delay = backoff.next_delay();
        tokio::time::sleep(delay).await;
        match attempt().await {
            Ok(value) => {
                readiness.recovered(dependency);
                return value;
            }
            Err(error) => readiness.failed(dependency, error.to_string(), backoff.clone().next),
        }
    }
}

/// `GET /ready` of every binary: 503 naming the missing dependencies, else the state store must
/// be writable and the mail provider able to serve; then 200 `{"status": "ready"}`.
pub async fn ready(State(app): State<App>) -> Response {
    if let Some(refusal) = app.readiness.not_ready() {
        return refusal;
    }
    match app.quietbox.check_ready().await {
        Ok(()) => axum::Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(e) => ApiError::new(
            ErrorCode::NotReady,
            format!("not ready ({}): {e}", e.code()),
        )
        .into_response(),
    }
}

/// The `/ready` route alone, for surfaces that have no other state-carrying router.
pub fn ready_routes(app: App) -> Router {
    Router::new().route("/ready", get(ready)).with_state(app)
}

/// The Gmail provider of a binary that started while Google was unreachable: it answers every
/// call with [`ProviderError::Unavailable`] (502 `upstream_unavailable`) until the background
/// connection succeeds, then delegates.
pub struct PendingGmail {
    connected: OnceLock<GmailProvider>,
    readiness: Arc<Readiness>,
}

impl PendingGmail {
    /// Not connected yet; `readiness` holds why.
    pub fn new(readiness: Arc<Readiness>) -> Self {
        PendingGmail {
            connected: OnceLock::new(),
            readiness,
        }
    }

    /// Installs the connected provider (once).
    pub fn connect(&self, gmail: GmailProvider) {
        let _ = self.connected.set(gmail);
    }

    fn get(&self) -> Result<&GmailProvider, ProviderError> {
        self.connected.get().ok_or_else(|| {
            let why = self
                .readiness
                .detail(Dependency::Google)
                .unwrap_or_else(|| "connecting".to_owned());
            ProviderError::Unavailable(format!(
                "Google is not reachable yet ({why}); quietbox retries in the background"
            ))
        })
    }
}

#[async_trait]
impl MailProvider for PendingGmail {
    fn account(&self) -> &str {
        self.connected
            .get()
            .map(MailProvider::account)
            .unwrap_or_default()
    }

    async fn scan(
        &self,
        request: &ScanRequest,
        progress: &dyn ScanProgress,
    ) -> Result<ScanBatch, ProviderError> {
        self.get()?.scan(request, progress).await
    }

    async fn send(&self, mail: OutgoingMail) -> Result<SentMail, ProviderError> {
        self.get()?.send(mail).await
    }

    async fn auto_archive(
        &self,
        key: &SubscriptionKey,
        message_ids: &[String],
    ) -> Result<ArchiveOutcome, ProviderError> {
        self.get()?.auto_archive(key, message_ids).await
    }

    async fn stop_auto_archive(&self, key: &SubscriptionKey) -> Result<usize, ProviderError> {
        self.get()?.stop_auto_archive(key).await
    }

    async fn check(&self) -> Result<(), ProviderError> {
        self.get()?.check().await
    }
}

/// A router whose routes can be replaced while serving: the start-up router of a binary waiting
/// for its IdP is swapped for the real one when the IdP answers. Each router it holds carries
/// its own layers (`with_common_layers`), so metrics see their route templates.
#[derive(Clone)]
pub struct SwitchRouter {
    current: Arc<RwLock<Router>>,
}

impl SwitchRouter {
    /// Serving `router` first.
    pub fn new(router: Router) -> Self {
        SwitchRouter {
            current: Arc::new(RwLock::new(router)),
        }
    }

    /// Serves `router` from the next request on.
    pub fn replace(&self, router: Router) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = router;
    }

    /// The router to serve: every request goes to the current one.
    pub fn router(&self) -> Router {
        let current = self.current.clone();
        Router::new().fallback_service(tower::service_fn(move |request: Request| {
            let router = current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            router.oneshot(request)
        }))
    }
}

/// What MCP's OAuth resource server serves while its authorization server is unreachable: the
/// RFC 9728 document, `/ready` 503 naming `oauth_issuer`, a 401 with the `resource_metadata`
/// challenge to a request without a bearer token, and 503 to one with a token (it cannot be
/// checked until the issuer's metadata names its keys).
pub fn awaiting_issuer_router(
    resource_url: &str,
    issuer: &str,
    metadata_url: &str,
    scopes: &[crate::scopes::Scope],
    readiness: Arc<Readiness>,
) -> Router {
    let document = Arc::new(ProtectedResourceMetadata::new::<crate::scopes::Scope>(
        resource_url,
        issuer,
    ));
    let suffix = url::Url::parse(resource_url)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let serve_document = move || {
        let document = document.clone();
        async move { axum::Json((*document).clone()) }
    };
    let mut router = Router::new().route(PROTECTED_RESOURCE_PATH, get(serve_document.clone()));
    if !suffix.is_empty() {
        router = router.route(
            &format!("{PROTECTED_RESOURCE_PATH}{suffix}"),
            get(serve_document),
        );
    }
    let on_ready = readiness.clone();
    // The shape of the auth crate's 401 in oauth mode: the scopes to ask for, then the metadata.
    let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    let challenge = if names.is_empty() {
        format!("Bearer resource_metadata=\"{metadata_url}\"")
    } else {
        format!(
            "Bearer scope=\"{}\", resource_metadata=\"{metadata_url}\"",
            names.join(" ")
        )
    };
    router
        .route(
            "/ready",
            get(move || {
                let readiness = on_ready.clone();
                async move {
                    readiness.not_ready().unwrap_or_else(|| {
                        // Recovered: the real router is being installed.
                        problem(
                            StatusCode::SERVICE_UNAVAILABLE,
                            ErrorCode::NotReady,
                            "starting",
                            &[],
                        )
                    })
                }
            }),
        )
        .fallback(move |request: Request| {
            let readiness = readiness.clone();
            let challenge = challenge.clone();
            async move { refuse_while_awaiting(&request, &readiness, &challenge) }
        })
}

fn refuse_while_awaiting(request: &Request, readiness: &Readiness, challenge: &str) -> Response {
    // As in oauth mode proper, only a bearer token is a credential (an API key is not).
    let has_token = request.headers().contains_key(header::AUTHORIZATION);
    if !has_token {
        let mut response = ApiError::new(
            ErrorCode::Unauthenticated,
            "a bearer token from the authorization server is required",
        )
        .into_response();
        if let Ok(value) = HeaderValue::from_str(challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        return response;
    }
    let why = readiness
        .detail(Dependency::OAuthIssuer)
        .unwrap_or_else(|| "starting".to_owned());
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::NotReady,
        &format!(
            "the authorization server is unreachable ({why}), so tokens cannot be checked yet; retry later"
        ),
        &[Dependency::OAuthIssuer.name()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_a_minute() {
        let mut backoff = Backoff::default();
        let waits: Vec<u64> = (0..9).map(|_| backoff.next_delay().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn readiness_names_what_is_missing_until_it_recovers() {
        let readiness = Readiness::default();
        assert!(readiness.not_ready().is_none());
        readiness.failed(Dependency::Google, "token endpoint 503".into(), RETRY_FIRST);
        assert!(readiness.is_missing(Dependency::Google));
        let refusal = readiness.not_ready().unwrap();
        assert_eq!(refusal.status(), StatusCode::SERVICE_UNAVAILABLE);
        readiness.recovered(Dependency::Google);
        assert!(readiness.not_ready().is_none());
    }
}
