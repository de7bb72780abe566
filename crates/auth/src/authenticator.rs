//! The one entry point: headers in, [`Principal`] or [`AuthError`] out.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use jsonwebtoken::DecodingKey;

use crate::api_key::ApiKeyVerifier;
use crate::error::{AuthError, ConfigError, Reason};
use crate::fetch::validate_fetch_url;
#[cfg(feature = "jwks")]
use crate::jwks::JwksCache;
use crate::jwks::JwksTiming;
use crate::jwt::{ClaimRules, JwtVerifier, KeySources};
use crate::mode::AuthMode;
use crate::oauth::ProtectedResourceMetadata;
#[cfg(feature = "jwks")]
use crate::oauth::{discover, resource_metadata_url};
use crate::principal::{AuthMethod, Principal};
use crate::scopes::{AppScope, check_declaration};
use crate::secret::Secret;

#[cfg(feature = "jwks")]
type Client = reqwest::Client;
#[cfg(not(feature = "jwks"))]
type Client = NoClient;

/// Stands for the HTTP client in builds without the `jwks` feature.
#[cfg(not(feature = "jwks"))]
#[derive(Debug, Clone, Copy)]
struct NoClient;

#[cfg(not(feature = "jwks"))]
const NO_JWKS: &str = "JWKS URLs and the oauth mode need the `jwks` feature of quietbox-auth";

/// The audience required when none is configured.
pub const DEFAULT_AUDIENCE: &str = "quietbox";

/// Plain settings of an [`Authenticator`](crate::Authenticator); a service maps its configuration onto this.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The mode.
    pub mode: AuthMode,
    /// The shared API key (`api_key`, `hybrid`).
    pub api_key: Option<Secret>,
    /// The HS256 secret (`jwt`, `hybrid`).
    pub jwt_secret: Option<Secret>,
    /// A JWKS URL (`jwt`, `hybrid`).
    pub jwks_url: Option<String>,
    /// Required `iss` (`jwt`, `hybrid`; in `oauth` the issuer is `oauth_issuer`). When set,
    /// tokens without `iss` are refused.
    pub issuer: Option<String>,
    /// Required `aud` (`jwt`, `hybrid`; in `oauth` the audience is `resource_url`). `aud` is
    /// always required: `None` (or blank) means [`DEFAULT_AUDIENCE`].
    pub audience: Option<String>,
    /// Clock skew for `exp`/`nbf`/`iat`.
    pub leeway: Duration,
    /// JWKS cache timing.
    pub jwks: JwksTiming,
    /// Authorization server (`oauth`).
    pub oauth_issuer: Option<String>,
    /// This resource's canonical URL (`oauth`).
    pub resource_url: Option<String>,
    /// A proxy for the JWKS and metadata fetches (`http://host:port`). `None`, the default,
    /// connects directly and ignores `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY`.
    pub proxy: Option<String>,
}

impl AuthConfig {
    /// Defaults of the design contract for `mode`: audience `quietbox`, 30 s leeway, JWKS cached
    /// 600 s, refetch cool-down 30 s. The tenant of a token is its `tenant` claim, else its `sub`.
    pub fn new(mode: AuthMode) -> Self {
        AuthConfig {
            mode,
            api_key: None,
            jwt_secret: None,
            jwks_url: None,
            issuer: None,
            audience: Some("quietbox".to_owned()),
            leeway: Duration::from_secs(30),
            jwks: JwksTiming::default(),
            oauth_issuer: None,
            resource_url: None,
            proxy: None,
        }
    }
}

/// Checks credentials according to one [`AuthConfig`], granting scopes of the application's
/// type `S` (see [`AppScope`]).
#[derive(Debug, Clone)]
pub struct Authenticator<S: AppScope> {
    mode: AuthMode,
    api_key: Option<ApiKeyVerifier>,
    jwt: Option<JwtVerifier<S>>,
    resource: Option<(ProtectedResourceMetadata, String)>,
}

impl<S: AppScope> Authenticator<S> {
    /// Builds an authenticator, refusing incomplete settings (an empty API key, `jwt` mode with
    /// no key source, `oauth` without issuer or resource, a JWKS or issuer URL that is not
    /// https outside loopback). In `oauth` mode this fetches the issuer's metadata to find its
    /// `jwks_uri`. Fetches follow no redirect to another origin and use no proxy unless
    /// [`AuthConfig::proxy`] names one. Without the `jwks` feature, a JWKS URL and the `oauth`
    /// mode are refused ([`ConfigError::Invalid`]). A bad [`AppScope`] declaration is refused
    /// too.
    pub async fn new(config: AuthConfig) -> Result<Self, ConfigError> {
        #[cfg(feature = "jwks")]
        let client = crate::fetch::client(config.proxy.as_deref())?;
        #[cfg(not(feature = "jwks"))]
        let client = NoClient;
        Self::build(config, client).await
    }

    /// Like [`Authenticator::new`], with the HTTP client used for discovery and JWKS (feature
    /// `jwks`). The URL, origin and body-size rules still apply to every fetch; redirects and
    /// proxies are the client's.
    #[cfg(feature = "jwks")]
    pub async fn with_client(
        config: AuthConfig,
        client: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        Self::build(config, client).await
    }

    async fn build(config: AuthConfig, client: Client) -> Result<Self, ConfigError> {
        check_declaration::<S>().map_err(|e| ConfigError::Invalid("AppScope::ALL", e))?;
        let mode = config.mode;
        let api_key = if mode.uses_api_key() {
            let key = config
                .api_key
                .clone()
                .ok_or(ConfigError::Missing("AGENT_API_KEY", mode.as_str()))?;
            Some(
                ApiKeyVerifier::new(key)
                    .ok_or(ConfigError::Missing("AGENT_API_KEY", mode.as_str()))?,
            )
        } else {
            None
        };
        let (jwt, resource) = match mode {
            AuthMode::ApiKey => (None, None),
            AuthMode::Jwt | AuthMode::Hybrid => {
                let hs256 = match &config.jwt_secret {
                    Some(secret) if !secret.is_blank() => Some(Arc::new(DecodingKey::from_secret(
                        secret.expose().as_bytes(),
                    ))),
                    Some(_) => return Err(ConfigError::Missing("AUTH_JWT_SECRET", mode.as_str())),
                    None => None,
                };
                if let Some(url) = &config.jwks_url {
                    validate_fetch_url(url)
                        .map_err(|e| ConfigError::Invalid("AUTH_JWKS_URL", e.to_string()))?;
                }
                #[cfg(feature = "jwks")]
                let jwks = config
                    .jwks_url
                    .as_ref()
                    .map(|url| JwksCache::new(url.clone(), client.clone(), config.jwks));
                #[cfg(not(feature = "jwks"))]
                let jwks = match &config.jwks_url {
                    Some(_) => return Err(ConfigError::Invalid("AUTH_JWKS_URL", NO_JWKS.into())),
                    None => None::<()>,
                };
                if hs256.is_none() && jwks.is_none() {
                    return Err(ConfigError::Missing(
                        "AUTH_JWT_SECRET or AUTH_JWKS_URL",
                        mode.as_str(),
                    ));
                }
                let rules = ClaimRules {
                    issuer: config.issuer.clone().filter(|iss| !iss.trim().is_empty()),
                    audience: config
                        .audience
                        .clone()
                        .filter(|aud| !aud.trim().is_empty())
                        .unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned()),
                    leeway: config.leeway,
                    method: AuthMethod::Jwt,
                    access_token_typ: false,
                };
                (
                    Some(JwtVerifier::new(
                        KeySources {
                            hs256,
                            #[cfg(feature = "jwks")]
                            jwks,
                        },
                        rules,
                    )),
                    None,
                )
            }
            #[cfg(not(feature = "jwks"))]
            AuthMode::OAuth => {
                let _ = client;
                return Err(ConfigError::Invalid("AUTH_MODE", NO_JWKS.into()));
            }
            #[cfg(feature = "jwks")]
            AuthMode::OAuth => {
                let issuer = config
                    .oauth_issuer
                    .clone()
                    .ok_or(ConfigError::Missing("MCP_OAUTH_ISSUER", "oauth"))?;
                let resource_url = config
                    .resource_url
                    .clone()
                    .ok_or(ConfigError::Missing("MCP_RESOURCE_URL", "oauth"))?;
                let metadata_url = resource_metadata_url(&resource_url)?;
                validate_fetch_url(&issuer)
                    .map_err(|e| ConfigError::Invalid("MCP_OAUTH_ISSUER", e.to_string()))?;
                let discovered = discover(&client, &issuer).await?;
                let jwks = JwksCache::new(discovered.jwks_uri, client.clone(), config.jwks);
                let rules = ClaimRules {
                    issuer: Some(issuer.clone()),
                    // RFC 8707: a token is accepted only when minted for this resource.
                    audience: resource_url.clone(),
                    leeway: config.leeway,
                    method: AuthMethod::OAuth,
                    // RFC 9068: an access token, not an ID token or another JWT.
                    access_token_typ: true,
                };
                let verifier = JwtVerifier::new(
                    KeySources {
                        hs256: None,
                        jwks: Some(jwks),
                    },
                    rules,
                );
                let document = ProtectedResourceMetadata::new::<S>(&resource_url, &issuer);
                (Some(verifier), Some((document, metadata_url)))
            }
        };
        Ok(Authenticator {
            mode,
            api_key,
            jwt,
            resource,
        })
    }

    /// The mode.
    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Authenticates a request from its headers. JWT failures are counted in
    /// `jwt_verify_errors_total{reason}`.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal<S>, AuthError<S>> {
        let api_key_header = header_str(headers, "x-api-key")?;
        let bearer = bearer_token(headers)?;
        if let Some(verifier) = &self.api_key {
            if let Some(key) = api_key_header {
                return if verifier.verify(key) {
                    Ok(Principal::api_key())
                } else {
                    Err(AuthError::Unauthenticated(Reason::BadApiKey))
                };
            }
            // In api_key mode a bearer value is the key; in hybrid it is the key when it
            // matches, and otherwise a JWT.
            if let Some(token) = bearer {
                if verifier.verify(token) {
                    return Ok(Principal::api_key());
                }
                if self.jwt.is_none() {
                    return Err(AuthError::Unauthenticated(Reason::BadApiKey));
                }
            }
        }
        let Some(verifier) = &self.jwt else {
            return Err(AuthError::Unauthenticated(Reason::Missing));
        };
        let Some(token) = bearer else {
            return Err(AuthError::Unauthenticated(Reason::Missing));
        };
        verifier.verify(token).await.map_err(|reason| {
            metrics::counter!("jwt_verify_errors_total", "reason" => reason.as_str()).increment(1);
            AuthError::Unauthenticated(reason)
        })
    }

    /// Authenticates, then requires `scope`.
    pub async fn authorize(
        &self,
        headers: &HeaderMap,
        scope: S,
    ) -> Result<Principal<S>, AuthError<S>> {
        let principal = self.authenticate(headers).await?;
        principal.require(scope)?;
        Ok(principal)
    }

    /// The RFC 9728 document (`oauth` mode only).
    pub fn protected_resource_metadata(&self) -> Option<&ProtectedResourceMetadata> {
        self.resource.as_ref().map(|(doc, _)| doc)
    }

    /// The RFC 9728 document's URL (`oauth` mode only), as named in `resource_metadata="…"`.
    pub fn resource_metadata_url(&self) -> Option<&str> {
        self.resource.as_ref().map(|(_, url)| url.as_str())
    }

    /// The `WWW-Authenticate` value for a refusal: in `oauth` mode it points to the
    /// protected-resource metadata; a 403 carries `error="insufficient_scope"` and the missing
    /// scope. A 401 names no scope here: use [`Authenticator::challenge_with_scopes`] (or
    /// [`crate::http::AuthLayer::naming_scopes`]) to name them. `None` for 429 and 503.
    pub fn challenge(&self, error: &AuthError<S>) -> Option<String> {
        self.challenge_with_scopes(error, &[])
    }

    /// Like [`Authenticator::challenge`], naming `scopes` (`scope="a b"`; nothing when empty):
    /// in a 401 they are the scopes a client should ask for (MCP authorization 2025-11-25); in a
    /// 403 they replace the one missing scope of the error (when empty, the error's scope is
    /// named).
    ///
    /// Shapes (`oauth` mode; other modes start with `realm="quietbox"` and have no
    /// `resource_metadata`):
    /// - 401, no credential: `Bearer scope="…", resource_metadata="…"`
    /// - 401, bad credential: `Bearer error="invalid_token", error_description="<reason>",
    ///   scope="…", resource_metadata="…"`
    /// - 403: `Bearer error="insufficient_scope", scope="…", resource_metadata="…"`
    pub fn challenge_with_scopes(&self, error: &AuthError<S>, scopes: &[S]) -> Option<String> {
        let mut params = Vec::new();
        if self.resource.is_none() {
            params.push("realm=\"quietbox\"".to_owned());
        }
        match error {
            AuthError::Unauthenticated(reason) => {
                if *reason != Reason::Missing {
                    params.push("error=\"invalid_token\"".to_owned());
                    params.push(format!("error_description=\"{}\"", reason.as_str()));
                }
                if !scopes.is_empty() {
                    params.push(scope_param(scopes));
                }
            }
            AuthError::Forbidden(scope) => {
                params.push("error=\"insufficient_scope\"".to_owned());
                params.push(if scopes.is_empty() {
                    scope_param(&[*scope])
                } else {
                    scope_param(scopes)
                });
            }
            AuthError::RateLimited { .. } | AuthError::LimiterUnavailable { .. } => return None,
        }
        if let Some((_, metadata_url)) = &self.resource {
            params.push(format!("resource_metadata=\"{metadata_url}\""));
        }
        Some(format!("Bearer {}", params.join(", ")))
    }

    /// The 403 step-up challenge for a valid token that lacks `scopes` (the scopes the call
    /// needs): `Bearer error="insufficient_scope", scope="<scopes>", resource_metadata="…"` in
    /// `oauth` mode, `Bearer realm="quietbox", error="insufficient_scope", scope="<scopes>"`
    /// otherwise. Send it with HTTP 403 so that OAuth clients re-authorize with the scopes.
    pub fn insufficient_scope_challenge(&self, scopes: &[S]) -> String {
        let mut params = vec!["error=\"insufficient_scope\"".to_owned()];
        if self.resource.is_none() {
            params.insert(0, "realm=\"quietbox\"".to_owned());
        }
        if !scopes.is_empty() {
            params.push(scope_param(scopes));
        }
        if let Some((_, metadata_url)) = &self.resource {
            params.push(format!("resource_metadata=\"{metadata_url}\""));
        }
        format!("Bearer {}", params.join(", "))
    }
}

/// `scope="a b c"`, in the given order without repeats.
fn scope_param<S: AppScope>(scopes: &[S]) -> String {
    let mut names: Vec<&str> = Vec::with_capacity(scopes.len());
    for scope in scopes {
        if !names.contains(&scope.as_str()) {
            names.push(scope.as_str());
        }
    }
    format!("scope=\"{}\"", names.join(" "))
}

fn header_str<'a, S: AppScope>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<Option<&'a str>, AuthError<S>> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|v| Some(v.trim()))
            .map_err(|_| AuthError::Unauthenticated(Reason::Malformed)),
    }
}

fn bearer_token<S: AppScope>(headers: &HeaderMap) -> Result<Option<&str>, AuthError<S>> {
    let Some(value) = header_str(headers, AUTHORIZATION.as_str())? else {
        return Ok(None);
    };
    let Some((scheme, token)) = value.split_once(' ') else {
        return Err(AuthError::Unauthenticated(Reason::Malformed));
    };
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Unauthenticated(Reason::Malformed));
    }
    Ok(Some(token.trim()))
}
