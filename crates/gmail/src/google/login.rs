//! `login`: the OAuth authorization-code flow with PKCE on a loopback redirect (Google's flow
//! for installed apps), writing `token.json` with mode 0600.
//!
//! The operator opens the printed URL, consents, and Google redirects the browser to
//! `http://127.0.0.1:<port>/`, where a one-request server takes the code, checks the `state`
//! (CSRF), and exchanges the code with the PKCE verifier.

use std::path::Path;
use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, RedirectUrl,
    Scope, TokenResponse, TokenUrl,
};
use quietbox_core::ports::ProviderError;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::token::{TokenFile, persist};

/// Read Gmail.
pub const GMAIL_READONLY: &str = "https://www.googleapis.com/auth/gmail.readonly";
/// Send mail.
pub const GMAIL_SEND: &str = "https://www.googleapis.com/auth/gmail.send";
/// Read free/busy.
pub const CALENDAR_FREEBUSY: &str = "https://www.googleapis.com/auth/calendar.freebusy";
/// Change labels, e.g. take messages out of the inbox (`messages.batchModify`).
pub const GMAIL_MODIFY: &str = "https://www.googleapis.com/auth/gmail.modify";
/// Manage filters (`users.settings.filters`).
pub const GMAIL_SETTINGS_BASIC: &str = "https://www.googleapis.com/auth/gmail.settings.basic";

/// Full mailbox access (Google accepts it for every Gmail method but filters); never asked for,
/// but honoured when a token file records it.
pub const MAIL_GOOGLE_COM: &str = "https://mail.google.com/";

/// Read-only Gmail, sending, and free/busy: what quietbox needs by default.
pub const DEFAULT_SCOPES: &[&str] = &[GMAIL_READONLY, GMAIL_SEND, CALENDAR_FREEBUSY];

/// What auto-archiving needs on top: a filter per archived sender or list, and label changes for
/// what already arrived.
pub const ARCHIVE_SCOPES: &[&str] = &[GMAIL_MODIFY, GMAIL_SETTINGS_BASIC];

/// The scopes `login` asks for: the defaults, plus [`ARCHIVE_SCOPES`] only when auto-archiving is
/// configured (least privilege: a token that never archives cannot change the mailbox).
pub fn login_scopes(archive: bool) -> Vec<&'static str> {
    let mut scopes = DEFAULT_SCOPES.to_vec();
    if archive {
        scopes.extend_from_slice(ARCHIVE_SCOPES);
    }
    scopes
}

#[derive(Deserialize)]
struct ClientSecretFile {
    installed: Option<ClientSection>,
    web: Option<ClientSection>,
}

#[derive(Deserialize)]
struct ClientSection {
    client_id: String,
    client_secret: Option<String>,
    auth_uri: String,
    token_uri: String,
}

/// Runs the flow: `show_url` receives the consent URL (print it, or open a browser). Waits at
/// most `timeout` for the redirect.
pub async fn login(
    client_secret_file: &Path,
    token_file: &Path,
    scopes: &[&str],
    timeout: Duration,
    show_url: impl FnOnce(&str),
) -> Result<(), ProviderError> {
    let text = std::fs::read_to_string(client_secret_file).map_err(|e| {
        ProviderError::BadData(format!("cannot read {}: {e}", client_secret_file.display()))
    })?;
    let file: ClientSecretFile = serde_json::from_str(&text).map_err(|e| {
        ProviderError::BadData(format!(
            "{} is not a Google client secret file: {e}",
            client_secret_file.display()
        ))
    })?;
    let section = file.installed.or(file.web).ok_or_else(|| {
        ProviderError::BadData("client secret file has neither \"installed\" nor \"web\"".into())
    })?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| ProviderError::Unavailable(format!("cannot listen for the redirect: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| ProviderError::Unavailable(e.to_string()))?
        .port();
    let redirect = format!("http://127.0.0.1:{port}/");
    let bad =
        |what: &str, e: oauth2::url::ParseError| ProviderError::BadData(format!("{what}: {e}"));
    let mut client = BasicClient::new(ClientId::new(section.client_id.clone()))
        .set_auth_uri(AuthUrl::new(section.auth_uri.clone()).map_err(|e| bad("auth_uri", e))?)
        .set_token_uri(TokenUrl::new(section.token_uri.clone()).map_err(|e| bad("token_uri", e))?)
        .set_redirect_uri(RedirectUrl::new(redirect).map_err(|e| bad("redirect", e))?);
    if let Some(secret) = &section.client_secret {
        client = client.set_client_secret(ClientSecret::new(secret.clone()));
    }
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge);
    for scope in scopes {
        request = request.add_scope(Scope::new((*scope).to_owned()));
    }
    // offline + consent: Google returns a refresh token.
    let (url, state) = request
        .add_extra_param("access_type", "offline")
        .add_extra_param("prompt", "consent")
        .url();
    show_url(url.as_str());

    let (code, returned_state) = tokio::time::timeout(timeout, receive_redirect(listener))
        .await
        .map_err(|_| {
            ProviderError::AuthExpired(
                "no redirect from the browser in time; run login again".into(),
            )
        })??;
    if returned_state != *state.secret() {
        return Err(ProviderError::AuthExpired(
            "the redirect's state does not match (possible CSRF); run login again".into(),
        ));
    }
    let send = super::oauth_http::client(reqwest::Client::new());
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&send)
        .await
        .map_err(|e| super::token::token_error("code exchange", e))?;
    let mut file = TokenFile {
        token: Some(token.access_token().secret().clone()),
        refresh_token: token.refresh_token().map(|t| t.secret().clone()),
        token_uri: Some(section.token_uri),
        client_id: Some(section.client_id),
        client_secret: section.client_secret,
        expiry: super::token::expiry_after(token.expires_in()),
        other: serde_json::Map::new(),
    };
    // What Google granted, which the consent screen lets the user narrow; Google's answer omits
    // `scope` only when it is exactly what was asked (RFC 6749 §5.1).
    let granted: Vec<String> = match token.scopes() {
        Some(granted) => granted.iter().map(|s| s.as_str().to_owned()).collect(),
        None => scopes.iter().map(|s| (*s).to_owned()).collect(),
    };
    let refused: Vec<&str> = scopes
        .iter()
        .copied()
        .filter(|asked| !granted.iter().any(|g| g == asked))
        .collect();
    if !refused.is_empty() {
        tracing::warn!(refused = %refused.join(" "), "Google did not grant every scope asked for; the features needing them will fail until `login` is run again and they are granted");
    }
    file.other
        .insert("scopes".into(), serde_json::json!(granted));
    if file.refresh_token.is_none() {
        return Err(ProviderError::AuthExpired(
            "Google returned no refresh token; revoke quietbox's access and run login again".into(),
        ));
    }
    persist(token_file, &file).await
}

/// Accepts connections until one is the OAuth redirect; answers it and returns `(code, state)`.
async fn receive_redirect(
    listener: tokio::net::TcpListener,
) -> Result<(String, String), ProviderError> {
    loop {
        let (stream, _) = listener
            .accept()
            .await
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await.is_err() {
            continue;
        }
        // `GET /?code=...&state=... HTTP/1.1`
        let target = request_line.split_whitespace().nth(1).unwrap_or("/");
        let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
        let mut code = None;
        let mut state = None;
        let mut error = None;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "code" => code = Some(value.into_owned()),
                "state" => state = Some(value.into_owned()),
                "error" => error = Some(value.into_owned()),
                _ => {}
            }
        }
        let body = if code.is_some() {
            "quietbox is authorized. You can close this tab."
        } else {
            "quietbox login: no code here."
        };
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut stream = reader.into_inner();
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
        if let Some(error) = error {
            return Err(ProviderError::AuthExpired(format!(
                "Google refused consent: {error}"
            )));
        }
        if let (Some(code), Some(state)) = (code, state) {
            return Ok((code, state));
        }
    }
}
