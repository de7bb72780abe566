//! Framework-free use: a service that is not built on axum hands the request's `HeaderMap` to
//! the authenticator and maps the outcome to its own responses. Needs no feature at all.
//!
//! Run with:
//! ```sh
//! cargo run -p quietbox-auth --no-default-features --example headermap
//! ```

use http::HeaderMap;
use quietbox_auth::{AppScope, AuthConfig, AuthMode, Secret};

/// A report service's scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReportScope {
    View,
    Export,
}

impl AppScope for ReportScope {
    const ALL: &'static [Self] = &[ReportScope::View, ReportScope::Export];

    fn as_str(self) -> &'static str {
        match self {
            ReportScope::View => "reports:view",
            ReportScope::Export => "reports:export",
        }
    }
}

type Authenticator = quietbox_auth::Authenticator<ReportScope>;
type AuthError = quietbox_auth::AuthError<ReportScope>;

/// What the host framework would send back: a status, a `WWW-Authenticate` value, a body.
fn respond(
    auth: &Authenticator,
    outcome: Result<String, AuthError>,
) -> (u16, Option<String>, String) {
    match outcome {
        Ok(body) => (200, None, body),
        Err(error) => (error.status(), auth.challenge(&error), error.to_string()),
    }
}

async fn export(auth: &Authenticator, headers: &HeaderMap) -> Result<String, AuthError> {
    let principal = auth.authorize(headers, ReportScope::Export).await?;
    Ok(format!(
        "export for {} (tenant {})",
        principal.subject, principal.tenant
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = AuthConfig::new(AuthMode::Hybrid);
    config.api_key = Some(Secret::new("change-me-to-a-long-random-key"));
    config.jwt_secret = Some(Secret::new("a-shared-hs256-secret-of-32-bytes!"));
    config.audience = Some("reports".into());
    let auth = Authenticator::new(config).await?;

    let mut with_key = HeaderMap::new();
    with_key.insert("x-api-key", "change-me-to-a-long-random-key".parse()?);
    let mut wrong_key = HeaderMap::new();
    wrong_key.insert("x-api-key", "guess".parse()?);
    let mut malformed = HeaderMap::new();
    malformed.insert("authorization", "Bearer not-a-jwt".parse()?);

    for (name, headers) in [
        ("the API key", with_key),
        ("a wrong key", wrong_key),
        ("no credential", HeaderMap::new()),
        ("a malformed token", malformed),
    ] {
        let (status, challenge, body) = respond(&auth, export(&auth, &headers).await);
        println!("{name}: {status} {body}");
        if let Some(challenge) = challenge {
            println!("  WWW-Authenticate: {challenge}");
        }
    }
    Ok(())
}
