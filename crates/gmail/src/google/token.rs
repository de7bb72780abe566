//! `token.json`: the OAuth credentials Google's client libraries write, refreshed with the
//! `oauth2` crate before expiry and after a 401, and rewritten atomically with mode 0600.
//!
//! Refreshes coalesce: the token sits behind one async mutex, so callers that find it expiring
//! at the same moment wait for one refresh and then use its result.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use oauth2::basic::{BasicClient, BasicErrorResponse};
use oauth2::{ClientId, ClientSecret, RefreshToken, RequestTokenError, TokenResponse, TokenUrl};
use quietbox_core::ports::ProviderError;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// Google's token endpoint.
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// Refresh this long before expiry, so a token never expires mid-request.
const REFRESH_MARGIN: chrono::Duration = chrono::Duration::seconds(60);

/// The content of `token.json` (google-auth's `authorized_user` format). Unknown fields are
/// kept, so rewriting the file loses nothing another tool put there.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct TokenFile {
    /// The access token (`token` in google-auth, `access_token` in older files).
    #[serde(default, alias = "access_token")]
    pub token: Option<String>,
    /// The refresh token.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// The token endpoint.
    #[serde(default)]
    pub token_uri: Option<String>,
    /// OAuth client id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// OAuth client secret.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// When the access token expires.
    #[serde(default)]
    pub expiry: Option<DateTime<Utc>>,
    /// Everything else, kept as it was.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFile")
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("token_uri", &self.token_uri)
            .field("client_id", &self.client_id)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

/// Keeps a valid access token, refreshing and persisting it as needed.
#[derive(Debug)]
pub struct TokenManager {
    path: PathBuf,
    http: reqwest::Client,
    token: Mutex<TokenFile>,
}

impl TokenManager {
    /// Loads `token.json`. A missing or unreadable file is a clear error telling the operator to
    /// run `login`.
    pub fn load(path: impl Into<PathBuf>, http: reqwest::Client) -> Result<Self, ProviderError> {
        let path = path.into();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ProviderError::AuthExpired(format!(
                "cannot read {} ({e}); run `quietbox-api login` to create it",
                path.display()
            ))
        })?;
        let token: TokenFile = serde_json::from_str(&text).map_err(|e| {
            ProviderError::BadData(format!("{} is not a token file: {e}", path.display()))
        })?;
        if token.refresh_token.is_none() && token.token.is_none() {
            return Err(ProviderError::AuthExpired(format!(
                "{} holds no token; run `quietbox-api login`",
                path.display()
            )));
        }
        Ok(TokenManager {
            path,
            http,
            token: Mutex::new(token),
        })
    }

    /// A valid access token, refreshed first when it expires within a minute.
    pub async fn access_token(&self) -> Result<String, ProviderError> {
        let mut token = self.token.lock().await;
        // An expiry at the start of time (a hand-edited file) is simply expired, not a panic.
        let fresh = token.expiry.is_none_or(|expiry| {
            expiry
                .checked_sub_signed(REFRESH_MARGIN)
                .is_some_and(|refresh_at| refresh_at > Utc::now())
        });
        if let (Some(access), true) = (&token.token, fresh) {
            return Ok(access.clone());
        }
        self.refresh(&mut token).await
    }

    /// The scopes `token.json` records as granted (`scopes`, written by `login` and updated by
    /// each refresh that names them); `None` when the file records none.
    pub async fn granted_scopes(&self) -> Option<Vec<String>> {
        let token = self.token.lock().await;
        let scopes = token.other.get("scopes")?.as_array()?;
        Some(
            scopes
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect(),
        )
    }

    /// Called after a 401 with `rejected`: refreshes unless another caller already replaced it.
    pub async fn refresh_after_rejection(&self, rejected: &str) -> Result<String, ProviderError> {
        let mut token = self.token.lock().await;
        if let Some(current) = &token.token
            && current != rejected
        {
            return Ok(current.clone());
        }
        self.refresh(&mut token).await
    }

    async fn refresh(&self, token: &mut TokenFile) -> Result<String, ProviderError> {
        let refresh_token = token.refresh_token.clone().ok_or_else(|| {
            ProviderError::AuthExpired(
                "token.json has no refresh token; run `quietbox-api login`".into(),
            )
        })?;
        let token_uri = token
            .token_uri
            .clone()
            .unwrap_or_else(|| GOOGLE_TOKEN_URI.to_owned());
        let mut client =
            BasicClient::new(ClientId::new(token.client_id.clone().unwrap_or_default()))
                .set_token_uri(
                    TokenUrl::new(token_uri)
                        .map_err(|e| ProviderError::BadData(format!("token_uri: {e}")))?,
                );
        if let Some(secret) = &token.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.clone()));
        }
        let send = super::oauth_http::client(self.http.clone());
        let response = client
            .exchange_refresh_token(&RefreshToken::new(refresh_token))
            .request_async(&send)
            .await
            .map_err(|error| token_error("token refresh", error))?;
        metrics::counter!("gmail_token_refreshes_total").increment(1);
        let access = response.access_token().secret().clone();
        token.token = Some(access.clone());
        token.expiry = expiry_after(response.expires_in());
        if let Some(new_refresh) = response.refresh_token() {
            token.refresh_token = Some(new_refresh.secret().clone());
        }
        if let Some(granted) = response.scopes() {
            let granted: Vec<&str> = granted.iter().map(|s| s.as_str()).collect();
            token
                .other
                .insert("scopes".into(), serde_json::json!(granted));
        }
        persist(&self.path, token).await?;
        Ok(access)
    }
}

/// The error for a failed call to the token endpoint during `what` (`token refresh`, `the code
/// exchange`): a refusal names Google's error, its description and what the operator does.
pub(crate) fn token_error<E: std::error::Error + 'static>(
    what: &str,
    error: RequestTokenError<E, BasicErrorResponse>,
) -> ProviderError {
    match error {
        RequestTokenError::ServerResponse(response) => refusal(
            what,
            response.error().as_ref(),
            response.error_description().map(String::as_str),
        ),
        // oauth2's own Display of these drops the cause ("Request failed"): name it.
        RequestTokenError::Request(cause) => ProviderError::Unavailable(format!(
            "{what} failed: the token endpoint is unreachable: {cause}"
        )),
        RequestTokenError::Parse(cause, _) => ProviderError::Unavailable(format!(
            "{what} failed: the token endpoint's answer is not a token response: {cause}"
        )),
        other => ProviderError::Unavailable(format!("{what} failed: {other}")),
    }
}

/// Google's refusal `error` (RFC 6749 §5.2 codes, or Google's own) as an operator-facing error.
fn refusal(what: &str, error: &str, description: Option<&str>) -> ProviderError {
    let remedy = match error {
        "invalid_grant" if what == "token refresh" => {
            return ProviderError::AuthExpired(
                "Google refused the refresh token (revoked or expired); run `quietbox-api login` again"
                    .into(),
            );
        }
        "invalid_grant" => "the code expired or was used already; run `quietbox-api login` again",
        "invalid_client" => {
            "the OAuth client id or secret is wrong, or the client was deleted: download the client \
             secret file again from the Google Cloud console (APIs & Services > Credentials) and run \
             `quietbox-api login`"
        }
        "unauthorized_client" => {
            "this OAuth client may not use this grant: create a \"Desktop app\" OAuth client in the \
             Google Cloud console, point GOOGLE_CLIENT_SECRET_FILE at it and run `quietbox-api login`"
        }
        "invalid_scope" => {
            "the client may not ask for these scopes (are they configured on the OAuth consent \
             screen?): fix the consent screen and run `quietbox-api login`"
        }
        "invalid_request" | "unsupported_grant_type" => {
            "the token file is missing a field Google needs (client_id, client_secret or \
             refresh_token): run `quietbox-api login` to write a complete one"
        }
        "access_denied" | "admin_policy_enforced" | "org_internal" => {
            "the account's administrator or the consent screen does not allow this client: ask the \
             Workspace administrator to allow it, then run `quietbox-api login`"
        }
        _ => {
            "run `quietbox-api login` again; if Google keeps refusing, check the OAuth client in the \
             Google Cloud console"
        }
    };
    let description = description
        .filter(|d| !d.trim().is_empty())
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    ProviderError::AuthExpired(format!(
        "Google refused the {what}: {error}{description}; {remedy}"
    ))
}

/// When a token that lasts `expires_in` from now expires; `None` (refresh before each use) when
/// the token endpoint names no lifetime or one beyond chrono's range.
pub fn expiry_after(expires_in: Option<std::time::Duration>) -> Option<DateTime<Utc>> {
    let lifetime = chrono::Duration::from_std(expires_in?).ok()?;
    Utc::now().checked_add_signed(lifetime)
}

/// Rewrites `token.json` atomically with mode 0600 (see [`write_private`]).
pub async fn persist(path: &Path, token: &TokenFile) -> Result<(), ProviderError> {
    let bytes =
        serde_json::to_vec_pretty(token).map_err(|e| ProviderError::BadData(e.to_string()))?;
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || write_private(&path, &bytes))
        .await
        .map_err(|e| ProviderError::Unavailable(e.to_string()))?
}

/// Writes `bytes` to `path` so that a crash leaves the old or the new content, never a mix,
/// and nobody else can read or redirect it: the temp file gets a random name in the same
/// directory and is created with `O_CREAT | O_EXCL` and mode 0600 (`tempfile`), so a symlink or
/// file planted at any name is never followed or reused; it is fsynced, renamed over `path`
/// (which replaces a symlink at `path` itself rather than writing through it), and the directory
/// is fsynced so the rename survives a crash. On failure the temp file is removed.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ProviderError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let failed = |e: std::io::Error| {
        ProviderError::Unavailable(format!("cannot write {}: {e}", path.display()))
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("token.json");
    // No `.tmp-` in the name: the state backend's stale-temp sweep must not take it mid-write.
    let mut file = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".new")
        .rand_bytes(12)
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(failed)?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .map_err(failed)?;
    file.persist(path).map_err(|e| failed(e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn token(access: &str) -> TokenFile {
        TokenFile {
            token: Some(access.into()),
            refresh_token: Some("1//refresh".into()),
            ..TokenFile::default()
        }
    }

    #[tokio::test]
    async fn the_rewrite_follows_no_planted_symlink_and_leaves_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.json");
        std::fs::write(&path, b"{\"token\":\"old\"}").unwrap();
        // What another local user could plant: the old, predictable temp name pointing at a
        // file of the owner's (or one the attacker can read).
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let planted = dir
            .path()
            .join(format!(".token.json.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();

        persist(&path, &token("ya29.new")).await.unwrap();

        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(std::fs::symlink_metadata(&planted).unwrap().is_symlink());
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let written: TokenFile = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(written.token.as_deref(), Some("ya29.new"));
        assert_eq!(written.refresh_token.as_deref(), Some("1//refresh"));
        // No temp file is left behind.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let expected_temp = format!(".token.json.tmp-{}", std::process::id());
        assert_eq!(
            names,
            vec![expected_temp, "token.json".to_owned(), "victim".to_owned()]
        );
    }

    #[tokio::test]
    async fn a_token_file_in_a_missing_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("token.json");
        let err = persist(&path, &token("x")).await.unwrap_err();
        assert!(err.to_string().contains("cannot write"), "{err}");
    }

    #[test]
    fn every_refusal_names_googles_error_and_a_remedy() {
        for error in [
            "invalid_client",
            "unauthorized_client",
            "invalid_scope",
            "invalid_request",
            "unsupported_grant_type",
            "admin_policy_enforced",
            "something_new",
        ] {
            let text = refusal("token refresh", error, Some("Google says why")).to_string();
            assert!(text.contains(error), "{text}");
            assert!(text.contains("(Google says why)"), "{text}");
            assert!(text.contains("quietbox-api login"), "{text}");
        }
        let grant = refusal("token refresh", "invalid_grant", None).to_string();
        assert!(grant.contains("revoked or expired"), "{grant}");
        let code = refusal("code exchange", "invalid_grant", None).to_string();
        assert!(
            code.contains("invalid_grant") && code.contains("login"),
            "{code}"
        );
    }

    #[test]
    fn expiry_arithmetic_never_overflows() {
        assert!(expiry_after(Some(std::time::Duration::from_secs(u64::MAX))).is_none());
        assert!(
            expiry_after(Some(std::time::Duration::from_secs(i64::MAX as u64 / 1000))).is_none()
        );
        assert!(expiry_after(None).is_none());
        let hour = expiry_after(Some(std::time::Duration::from_secs(3600))).unwrap();
        assert!(hour > Utc::now() + chrono::Duration::minutes(59));
    }
}
