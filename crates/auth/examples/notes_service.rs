//! A notes service with scopes of its own, `notes:read` and `notes:write`, protected by
//! `quietbox-auth` in the mode named by `AUTH_MODE` (`api_key`, `jwt`, `hybrid` or `oauth`).
//!
//! Run with:
//! ```sh
//! AUTH_MODE=api_key AUTH_API_KEY=change-me cargo run -p quietbox-auth --example notes_service
//! curl -H 'X-API-Key: change-me' localhost:3000/notes               # 200, the notes
//! curl -H 'X-API-Key: change-me' -d 'buy milk' localhost:3000/notes  # 201
//! curl -i localhost:3000/notes                                       # 401 problem+json
//!
//! AUTH_MODE=jwt AUTH_JWT_SECRET=a-long-secret cargo run -p quietbox-auth --example notes_service
//! AUTH_MODE=jwt AUTH_JWKS_URL=https://idp.example.com/jwks.json cargo run -p quietbox-auth --example notes_service
//! AUTH_MODE=hybrid AUTH_API_KEY=change-me AUTH_JWT_SECRET=a-long-secret cargo run -p quietbox-auth --example notes_service
//! AUTH_MODE=oauth AUTH_OAUTH_ISSUER=https://idp.example.com AUTH_RESOURCE_URL=https://notes.example.com cargo run -p quietbox-auth --example notes_service
//! ```
//! JWTs need `aud: "notes"` (in `oauth` mode: the resource URL), an `exp`, a `sub`, and scopes
//! in `scope` or `scp`. The API key grants both scopes. Writing is rate limited per tenant.
//! `crates/auth/tests/it/notes.rs` runs this very file against each mode.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use quietbox_auth::http::{AuthLayer, Authorized, protected_resource_routes};
use quietbox_auth::{AppScope, AuthConfig, AuthMode, ConfigError, RequiredScope, Secret};

/// The notes service's scopes: the service declares them, the auth crate knows none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotesScope {
    /// Read the notes.
    Read,
    /// Add notes.
    Write,
}

impl AppScope for NotesScope {
    const ALL: &'static [Self] = &[NotesScope::Read, NotesScope::Write];

    fn as_str(self) -> &'static str {
        match self {
            NotesScope::Read => "notes:read",
            NotesScope::Write => "notes:write",
        }
    }
}

/// Route marker: requires `notes:read`.
pub struct CanRead;
impl RequiredScope for CanRead {
    type Scope = NotesScope;
    const SCOPE: NotesScope = NotesScope::Read;
}

/// Route marker: requires `notes:write`.
pub struct CanWrite;
impl RequiredScope for CanWrite {
    type Scope = NotesScope;
    const SCOPE: NotesScope = NotesScope::Write;
}

/// The crate's generic types at this service's scope type.
pub type Authenticator = quietbox_auth::Authenticator<NotesScope>;
type RateLimiter = quietbox_auth::RateLimiter<NotesScope>;

#[derive(Clone)]
struct Notes {
    notes: Arc<Mutex<Vec<String>>>,
    limiter: Arc<RateLimiter>,
}

async fn list(
    State(state): State<Notes>,
    Authorized(who, ..): Authorized<CanRead>,
) -> Json<serde_json::Value> {
    let notes = state.notes.lock().map(|n| n.clone()).unwrap_or_default();
    Json(serde_json::json!({"reader": who.subject, "notes": notes}))
}

async fn add(
    State(state): State<Notes>,
    Authorized(who, ..): Authorized<CanWrite>,
    body: String,
) -> Response {
    if let Err(refused) = state.limiter.check(&who.tenant, "write").await {
        return refused.into_response();
    }
    if let Ok(mut notes) = state.notes.lock() {
        notes.push(body);
    }
    StatusCode::CREATED.into_response()
}

/// The service: `/notes` (GET needs `notes:read`, POST `notes:write`) behind the auth layer,
/// whose 401 names both scopes; the RFC 9728 document in `oauth` mode; `/health` open.
pub fn app(auth: Arc<Authenticator>) -> Router {
    let state = Notes {
        notes: Arc::default(),
        limiter: Arc::new(RateLimiter::new(30, 5)),
    };
    Router::new()
        .route("/notes", get(list).post(add))
        .with_state(state)
        .layer(AuthLayer::new(auth.clone()).naming_scopes(NotesScope::ALL))
        .merge(protected_resource_routes(auth))
        .route("/health", get(|| async { "ok\n" }))
}

/// The settings, read through `var` (the environment in `main`): `AUTH_MODE`, `AUTH_API_KEY`,
/// `AUTH_JWT_SECRET`, `AUTH_JWKS_URL`, `AUTH_JWT_ISSUER`, `AUTH_JWT_AUDIENCE` (default
/// `notes`), `AUTH_OAUTH_ISSUER` and `AUTH_RESOURCE_URL`.
pub fn config(var: impl Fn(&str) -> Option<String>) -> Result<AuthConfig, ConfigError> {
    let var = |name: &str| var(name).filter(|v| !v.is_empty());
    let mode: AuthMode = var("AUTH_MODE")
        .unwrap_or_else(|| "api_key".into())
        .parse()
        .map_err(|e: quietbox_auth::UnknownMode| {
            ConfigError::Invalid("AUTH_MODE", e.to_string())
        })?;
    let mut config = AuthConfig::new(mode);
    config.api_key = var("AUTH_API_KEY").map(Secret::new);
    config.jwt_secret = var("AUTH_JWT_SECRET").map(Secret::new);
    config.jwks_url = var("AUTH_JWKS_URL");
    config.issuer = var("AUTH_JWT_ISSUER");
    config.audience = Some(var("AUTH_JWT_AUDIENCE").unwrap_or_else(|| "notes".into()));
    config.oauth_issuer = var("AUTH_OAUTH_ISSUER");
    config.resource_url = var("AUTH_RESOURCE_URL");
    Ok(config)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = config(|name| std::env::var(name).ok())?;
    let mode = config.mode;
    let auth = Arc::new(Authenticator::new(config).await?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("{mode} mode; listening on {}", listener.local_addr()?);
    axum::serve(listener, app(auth)).await?;
    Ok(())
}
