//! Builds everything a binary serves from [`Settings`]: the state backend, the providers, the
//! authenticator, the rate limiter and the core service — once, at start-up, so that a broken
//! setting or a corrupt state file stops the process before it listens.

use std::sync::Arc;
use std::time::Duration;

use quietbox_auth::{AuthConfig, AuthMode, Authenticator, JwksTiming, RateLimiter};
use quietbox_core::Quietbox;
use quietbox_core::ports::{CalendarProvider, MailProvider, SystemClock};
use quietbox_core::service;
use quietbox_core::store::StateStore;
use quietbox_gmail::google::{
    GmailProvider, GoogleApi, GoogleCalendar, QuotaBucket, RetryPolicy, TokenManager,
};
use quietbox_gmail::local::{LocalCalendar, LocalMail, Outbox};
use quietbox_gmail::outbound::{OutboundPolicy, SsrfGuardedClient};
use quietbox_state::{FileStore, PgStore};

use crate::config::{MailProviderKind, Settings, StateBackend};

/// Gmail's per-user quota, a little under 250 units/s so that clock skew between our bucket and
/// Google's window does not turn into 429s.
const GMAIL_UNITS_PER_SECOND: u32 = 240;

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
    let mode: AuthMode = settings
        .auth
        .mode
        .parse()
        .map_err(|e: quietbox_auth::UnknownMode| WiringError::Provider(e.to_string()))?;
    let mut config = AuthConfig::new(mode);
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

/// Builds the app.
pub async fn build(settings: Settings) -> Result<App, WiringError> {
    let state = open_state(&settings).await?;
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
                );
                let gmail = GmailProvider::connect(api.clone(), 16)
                    .await
                    .map_err(|e| WiringError::Provider(format!("Gmail: {e}")))?;
                (Arc::new(gmail), Arc::new(GoogleCalendar::new(api)))
            }
        };
    let policy = OutboundPolicy::public_only()
        .with_allow(&settings.unsubscribe_allow)
        .with_deny(&settings.unsubscribe_deny);
    let one_click =
        Arc::new(SsrfGuardedClient::new(policy).map_err(|e| WiringError::Provider(e.to_string()))?);
    let core_settings = service::Settings {
        digest_to: settings.digest_to.clone(),
        default_tz: settings.digest_tz.parse().unwrap_or(chrono_tz::UTC),
        unsubscribe_stale_after: Duration::from_secs(600),
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
    let auth = Arc::new(Authenticator::new(auth_config(&settings)?).await?);
    let limiter = Arc::new(RateLimiter::new(
        settings.rate_limit_per_min,
        settings.rate_limit_burst,
    ));
    Ok(App {
        quietbox,
        auth,
        limiter,
        state,
        settings: Arc::new(settings),
    })
}
