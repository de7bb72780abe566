//! Protects a small axum app with `quietbox-auth`, in the mode named by `AUTH_MODE`.
//!
//! Run with:
//! ```sh
//! AUTH_MODE=api_key AGENT_API_KEY=change-me cargo run -p quietbox-auth --example protect_axum_app
//! curl -H 'X-API-Key: change-me' localhost:3000/scan        # 200
//! curl localhost:3000/scan                                  # 401 problem+json
//!
//! AUTH_MODE=jwt AUTH_JWT_SECRET=a-long-secret cargo run -p quietbox-auth --example protect_axum_app
//! AUTH_MODE=jwt AUTH_JWKS_URL=https://idp.example.com/jwks.json cargo run -p quietbox-auth --example protect_axum_app
//! AUTH_MODE=hybrid AGENT_API_KEY=change-me AUTH_JWT_SECRET=a-long-secret cargo run -p quietbox-auth --example protect_axum_app
//! ```
//! Tokens need `aud: "quietbox"`, an `exp`, and scopes in `scope` or `scp`.

use std::sync::Arc;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use quietbox_auth::http::{AuthLayer, Authorized, scope};
use quietbox_auth::{AuthConfig, AuthMode, Authenticator, RateLimiter, Secret};

async fn scan(Authorized(who, ..): Authorized<scope::MailScan>) -> String {
    format!(
        "scanning the inbox of {} (tenant {})\n",
        who.subject, who.tenant
    )
}

async fn unsubscribe(
    axum::extract::State(limiter): axum::extract::State<Arc<RateLimiter>>,
    Authorized(who, ..): Authorized<scope::UnsubscribeExecute>,
) -> axum::response::Response {
    match limiter.check(&who.tenant, "unsubscribe").await {
        Ok(()) => "unsubscribed\n".into_response(),
        Err(refused) => refused.into_response(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mode: AuthMode = env("AUTH_MODE")
        .unwrap_or_else(|| "api_key".into())
        .parse()?;
    let mut config = AuthConfig::new(mode);
    config.api_key = env("AGENT_API_KEY").map(Secret::new);
    config.jwt_secret = env("AUTH_JWT_SECRET").map(Secret::new);
    config.jwks_url = env("AUTH_JWKS_URL");
    config.issuer = env("AUTH_JWT_ISSUER");
    let auth = Arc::new(Authenticator::new(config).await?);

    let app = Router::new()
        .route("/scan", get(scan))
        .route("/unsubscribe", post(unsubscribe))
        .layer(AuthLayer::new(auth))
        .route("/health", get(|| async { "ok\n" }))
        .with_state(Arc::new(RateLimiter::new(30, 5)));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("{mode} mode; listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
