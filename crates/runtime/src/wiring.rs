//! Builds everything a binary serves from [`Settings`]: the state backend, the providers, the
//! authenticator, the rate limiter and the core service — once, at start-up, so that a broken
//! setting or a corrupt state file stops the process before it listens. A dependency that is
//! only unreachable (Google, the OAuth issuer) does not: `serve` ([`start`]) listens without it
//! and connects in the background (see [`Readiness`]).

use std::sync::Arc;
use std::time::Duration;

use quietbox_auth::{AuthConfig, AuthMode, FailurePolicy, JwksTiming, OnBackendError, Quota};
use quietbox_core::Quietbox;
use quietbox_core::ports::{CalendarProvider, MailProvider, SystemClock};
use quietbox_core::store::StateStore;
use quietbox_core::{compliance, service};
use quietbox_gmail::google::{
    GmailProvider, GoogleApi, GoogleCalendar, QuotaBucket, RetryPolicy, TokenManager,
};
use quietbox_gmail::local::{LocalCalendar, LocalMail, Outbox};
use quietbox_gmail::outbound::{OutboundPolicy, SsrfGuardedClient};
use quietbox_state::{FileStore, PgStore};

use crate::config::{
    Enforcement, MailProviderKind, RateLimitBackend, RateLimitOnError, Settings, StateBackend,
};
use crate::operations::{Budget, Operation};
use crate::scopes::{Authenticator, RateLimiter};

mod dependencies;

pub use dependencies::{
    Backoff, Dependency, PendingGmail, RETRY_FIRST, RETRY_MAX, Readiness, SwitchRouter, ready,
    ready_routes,
};

/// Gmail's per-user quota, a little under 250 units/s so that clock skew between our bucket and
/// Google's window does not turn into 429s.
const GMAIL_UNITS_PER_SECOND: u32 = 240;

/// The rate-limit keys of the operations that change something (an unsubscribe, a sent digest,
/// a sender decision): with the default `RATE_LIMIT_ON_ERROR`, these are refused while the
/// limiter's backend is down, and the others (scans, reads) are let through. Derived from
/// [`Operation::budget`], so a new mutation cannot be forgotten here.
pub fn mutating_operations() -> Vec<&'static str> {
    Operation::ALL
        .into_iter()
        .filter(|op| op.budget() == Budget::Mutation)
        .map(Operation::limit_key)
        .collect()
}

/// Prefix of the rate-limit keys in Redis (one Redis may serve other applications too).
pub const REDIS_KEY_PREFIX: &str = "quietbox:rate:";

/// Why start-up failed. Each message names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    /// The state backend could not be opened (corrupt file, database down…).
    #[error("state: {0}")]
    State(#[from] quietbox_core::store::StateError),
    /// The authenticator could not be built.
    #[error("auth: {0}")]
    Auth(#[from] quietbox_auth::ConfigError),
    /// A provider could not be set up.
    #[error("provider: {0}")]
    Provider(String),
}

/// Everything a protocol surface needs, shared by all its handlers.
#[derive(Clone)]
pub struct App {
    /// The use cases.
    pub quietbox: Quietbox,
    /// Checks credentials.
    pub auth: Arc<Authenticator>,
    /// Per-tenant limits.
    pub limiter: Arc<RateLimiter>,
    /// The state store (for readiness and operator commands).
    pub state: Arc<dyn StateStore>,
    /// The settings it was built from.
    pub settings: Arc<Settings>,
    /// The dependencies not reachable yet (Google, while it is down at start): `/ready` names
    /// them.
    pub readiness: Arc<Readiness>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Opens the configured state backend.
pub async fn open_state(settings: &Settings) -> Result<Arc<dyn StateStore>, WiringError> {
    Ok(match &settings.state_backend {
        StateBackend::File => Arc::new(FileStore::open(&settings.data_dir)?),
        StateBackend::Postgres { url } => Arc::new(PgStore::connect(url.expose()).await?),
    })
}

/// The auth crate's configuration from the settings.
pub fn auth_config(settings: &Settings) -> Result<AuthConfig, WiringError> {
    let mut config = AuthConfig::new(settings.auth.mode);
    // The same `Secret` type end to end: settings never copy a secret into a plain string.
    config.api_key = settings.auth.api_key.clone();
    config.jwt_secret = settings.auth.jwt_secret.clone();
    config.jwks_url = settings.auth.jwks_url.clone();
    config.issuer = settings.auth.issuer.clone();
    config.audience = Some(settings.auth.audience.clone());
    config.leeway = settings.auth.leeway;
    config.jwks = JwksTiming {
        ttl: settings.auth.jwks_ttl,
        ..JwksTiming::default()
    };
    config.oauth_issuer = settings.auth.oauth_issuer.clone();
    config.resource_url = settings.auth.resource_url.clone();
    Ok(config)
}

/// The rate limiter of `RATE_LIMIT_BACKEND`, failing per `RATE_LIMIT_ON_ERROR`. Every operation
/// has its own bucket per tenant; mutations and work (scan, digest) get
/// `RATE_LIMIT_PER_MIN`/`RATE_LIMIT_BURST`, cheap reads `RATE_LIMIT_READ_PER_MIN`/
/// `RATE_LIMIT_READ_BURST`.
pub fn rate_limiter(settings: &Settings) -> Result<RateLimiter, WiringError> {
    let limiter = match &settings.rate_limit_backend {
        RateLimitBackend::Memory => {
            RateLimiter::memory(settings.rate_limit_per_min, settings.rate_limit_burst)
        }
        RateLimitBackend::Redis { url } => {
            let limiter = RateLimiter::redis(
                url.expose(),
                REDIS_KEY_PREFIX,
                settings.rate_limit_per_min,
                settings.rate_limit_burst,
            )?;
            tracing::info!("rate limits are shared through Redis");
            limiter
        }
    };
    let read = Quota {
        per_minute: settings.rate_limit_read_per_min,
        burst: settings.rate_limit_read_burst,
    };
    let limiter = Operation::ALL
        .into_iter()
        .filter(|op| op.budget() == Budget::Read)
        .fold(limiter, |limiter, op| {
            limiter.with_quota(op.limit_key(), read)
        });
    let policy = FailurePolicy::split(&mutating_operations());
    let policy = match settings.rate_limit_on_error {
        RateLimitOnError::Split => policy,
        RateLimitOnError::Open => policy.uniform(OnBackendError::Open),
        RateLimitOnError::Closed => policy.uniform(OnBackendError::Closed),
    };
    Ok(limiter.with_failure_policy(policy))
}

/// How long the first connection to Google may take at start before the binary serves without
/// it (and keeps trying in the background).
const GOOGLE_FIRST_ATTEMPT: Duration = Duration::from_secs(20);

/// Builds the app, failing when a dependency (Google, the OAuth issuer) cannot be reached: for
/// the CLI's one-shot commands. `serve` uses [`start`].
pub async fn build(settings: Settings) -> Result<App, WiringError> {
    let core = assemble(&settings, false).await?;
    let auth = Arc::new(Authenticator::new(auth_config(&settings)?).await?);
    Ok(core.into_app(auth, settings))
}

/// What [`start`] built.
pub enum Started {
    /// Everything is wired.
    Ready(App),
    /// The OAuth authorization server was unreachable: serve [`AwaitingIssuer::router`] and
    /// await [`AwaitingIssuer::connect`].
    AwaitingIssuer(Box<AwaitingIssuer>),
}

/// A binary in OAuth mode whose authorization server has not answered yet.
pub struct AwaitingIssuer {
    core: Core,
    settings: Settings,
    config: AuthConfig,
    metadata_url: String,
}

impl AwaitingIssuer {
    /// The router to serve meanwhile: the RFC 9728 document, the 401 challenge, `/ready` 503
    /// naming `oauth_issuer`, and 503 for calls with credentials. The challenge names
    /// `scopes` (the binary's: MCP passes its tools' scopes).
    pub fn router(&self, scopes: &[crate::scopes::Scope]) -> axum::Router {
        dependencies::awaiting_issuer_router(
            self.config.resource_url.as_deref().unwrap_or_default(),
            self.config.oauth_issuer.as_deref().unwrap_or_default(),
            &self.metadata_url,
            scopes,
            self.core.readiness.clone(),
        )
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The state store (the scheduler needs no token).
    pub fn state(&self) -> Arc<dyn StateStore> {
        self.core.state.clone()
    }

    /// The use cases (the scheduler needs no token).
    pub fn quietbox(&self) -> &Quietbox {
        &self.core.quietbox
    }

    /// Retries the issuer's discovery with [`Backoff`] until it succeeds, then returns the app.
    pub async fn connect(self: Box<Self>) -> App {
        let readiness = self.core.readiness.clone();
        let config = self.config;
        let auth = dependencies::retry(
            &readiness,
            Dependency::OAuthIssuer,
            Backoff::default(),
            || Authenticator::new(config.clone()),
        )
        .await;
        self.core.into_app(Arc::new(auth), self.settings)
    }
}

/// Builds the app for `serve`: a Google account or an OAuth issuer unreachable at start does not
/// stop the binary; it serves without it and connects in the background (see [`Readiness`]).
/// Bad settings and an unusable state still stop it.
pub async fn start(settings: Settings) -> Result<Started, WiringError> {
    // The failure counter must reach the exporter even before the first router is built.
    let _ = crate::telemetry::metrics_handle();
    let core = assemble(&settings, true).await?;
    let config = auth_config(&settings)?;
    match Authenticator::new(config.clone()).await {
        Ok(auth) => Ok(Started::Ready(core.into_app(Arc::new(auth), settings))),
        Err(quietbox_auth::ConfigError::Discovery { url, detail })
            if config.mode == AuthMode::OAuth =>
        {
            let resource = config.resource_url.as_deref().unwrap_or_default();
            let metadata_url = quietbox_auth::resource_metadata_url(resource)?;
            core.readiness.failed(
                Dependency::OAuthIssuer,
                format!("{url}: {detail}"),
                RETRY_FIRST,
            );
            Ok(Started::AwaitingIssuer(Box::new(AwaitingIssuer {
                core,
                settings,
                config,
                metadata_url,
            })))
        }
        Err(error) => Err(error.into()),
    }
}

/// Everything but the authenticator.
struct Core {
    quietbox: Quietbox,
    state: Arc<dyn StateStore>,
    limiter: Arc<RateLimiter>,
    readiness: Arc<Readiness>,
}

impl Core {
    fn into_app(self, auth: Arc<Authenticator>, settings: Settings) -> App {
        App {
            quietbox: self.quietbox,
            auth,
            limiter: self.limiter,
            state: self.state,
            settings: Arc::new(settings),
            readiness: self.readiness,
        }
    }
}

/// With `UNSUBSCRIBE_ENFORCE=archive`, warns when `token.json` records that Google did not grant
/// a scope archiving needs (each archiving call then fails naming it, without calling Google).
async fn warn_of_missing_archive_scopes(settings: &Settings, api: &GoogleApi) {
    if settings.unsubscribe_enforce != crate::config::Enforcement::Archive {
        return;
    }
    let missing = api.missing_archive_scopes().await;
    if !missing.is_empty() {
        tracing::warn!(
            missing = %missing.join(" "),
            "UNSUBSCRIBE_ENFORCE=archive, but token.json records that Google did not grant these \
             scopes: archiving fails until `quietbox-api login --archive` grants them"
        );
    }
}

/// Opens the state and the providers; with `tolerant`, a Google account that does not answer
/// is connected in the background instead of failing.
async fn assemble(settings: &Settings, tolerant: bool) -> Result<Core, WiringError> {
    let readiness = Arc::new(Readiness::default());
    let state = open_state(settings).await?;
    let (mail, calendar): (Arc<dyn MailProvider>, Arc<dyn CalendarProvider>) =
        match settings.mail_provider {
            MailProviderKind::Local => {
                if !settings.local_mbox.is_file() {
                    return Err(WiringError::Provider(format!(
                        "LOCAL_MBOX {} is not a readable file",
                        settings.local_mbox.display()
                    )));
                }
                let outbox = match &settings.smtp_url {
                    Some(url) => Outbox::smtp(url.expose())
                        .map_err(|e| WiringError::Provider(e.to_string()))?,
                    None => Outbox::folder(settings.data_dir.join("outbox")),
                };
                (
                    Arc::new(LocalMail::new(
                        settings.local_account.clone(),
                        settings.local_mbox.clone(),
                        outbox,
                    )),
                    Arc::new(LocalCalendar::new(settings.local_ics.clone())),
                )
            }
            MailProviderKind::Gmail => {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .map_err(|e| WiringError::Provider(e.to_string()))?;
                let tokens = TokenManager::load(&settings.google_token_file, http.clone())
                    .map_err(|e| WiringError::Provider(e.to_string()))?;
                let api = GoogleApi::new(
                    http,
                    &settings.google_api_base_url,
                    Arc::new(tokens),
                    Arc::new(QuotaBucket::new(GMAIL_UNITS_PER_SECOND)),
                    RetryPolicy::default(),
                )
                .with_retry_after_max(settings.google_retry_after_max);
                warn_of_missing_archive_scopes(settings, &api).await;
                let first = tokio::time::timeout(
                    GOOGLE_FIRST_ATTEMPT,
                    GmailProvider::connect(api.clone(), 16),
                )
                .await
                .map_err(|_| format!("no answer within {} s", GOOGLE_FIRST_ATTEMPT.as_secs()))
                .and_then(|connected| connected.map_err(|e| e.to_string()));
                let mail: Arc<dyn MailProvider> = match first {
                    Ok(gmail) => Arc::new(gmail),
                    Err(detail) if tolerant => {
                        readiness.failed(Dependency::Google, detail, RETRY_FIRST);
                        let pending = Arc::new(PendingGmail::new(readiness.clone()));
                        let (connecting, waiting, api) =
                            (pending.clone(), readiness.clone(), api.clone());
                        tokio::spawn(async move {
                            let gmail = dependencies::retry(
                                &waiting,
                                Dependency::Google,
                                Backoff::default(),
                                || GmailProvider::connect(api.clone(), 16),
                            )
                            .await;
                            connecting.connect(gmail);
                        });
                        pending
                    }
                    Err(detail) => return Err(WiringError::Provider(format!("Gmail: {detail}"))),
                };
                (
                    mail,
                    Arc::new(GoogleCalendar::with_calendars(
                        api,
                        settings.calendar_ids.clone(),
                    )),
                )
            }
        };
    let policy = if settings.unsubscribe_allow_loopback {
        // Accepted only by debug builds (the settings refuse it otherwise): lets the real-binary
        // tests reach a one-click endpoint on 127.0.0.1.
        tracing::warn!("outbound unsubscribe may reach loopback addresses (test builds only)");
        OutboundPolicy::allow_loopback_for_tests()
    } else {
        OutboundPolicy::public_only()
    };
    let policy = policy
        .with_allow(&settings.unsubscribe_allow)
        .with_deny(&settings.unsubscribe_deny);
    let one_click =
        Arc::new(SsrfGuardedClient::new(policy).map_err(|e| WiringError::Provider(e.to_string()))?);
    let core_settings = service::Settings {
        digest_to: settings.digest_to.clone(),
        default_tz: settings.digest_tz,
        unsubscribe_stale_after: Duration::from_secs(600),
        unsubscribe_grace: settings.unsubscribe_grace,
        enforcement: match settings.unsubscribe_enforce {
            Enforcement::Report => compliance::Enforcement::Report,
            Enforcement::Archive => compliance::Enforcement::Archive,
        },
        ..service::Settings::default()
    };
    let quietbox = Quietbox::new(
        mail,
        calendar,
        state.clone(),
        one_click,
        Arc::new(SystemClock),
        core_settings,
    );
    let limiter = Arc::new(rate_limiter(settings)?);
    Ok(Core {
        quietbox,
        state,
        limiter,
        readiness,
    })
}

#[cfg(test)]
mod rate_limit_tests {
    use super::*;

    #[test]
    fn sender_decisions_are_mutations_and_reads_are_not() {
        let mutating = mutating_operations();
        for key in ["decision", "unsubscribe", "digest"] {
            assert!(mutating.contains(&key), "{key} missing from {mutating:?}");
        }
        for key in ["scan", "candidates", "history", "availability", "sender"] {
            assert!(!mutating.contains(&key), "{key} is not a mutation");
        }
    }
}
