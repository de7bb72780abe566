//! JWT verification: size limit, algorithm pinned by the key, signature, `exp`/`nbf` with
//! leeway, `iss`, `aud`, `iat`, then scopes and tenant from the claims.
//!
//! - `aud` is always required (it must name the configured audience, `quietbox` by default, or
//!   the resource URL in `oauth` mode); `iss` is required whenever an issuer is configured
//!   (always in `oauth` mode); `exp` and `sub` are always required.
//! - `iat`, when present, must not be in the future beyond the leeway
//!   ([`Reason::IssuedInFuture`]); jsonwebtoken does not check it.
//! - With [`ClaimRules::access_token_typ`] (`oauth` mode), a `typ` header, when present, must be
//!   `at+jwt` or `application/at+jwt`, case-insensitively (RFC 9068 §4), else
//!   [`Reason::WrongTokenType`]. A token without `typ` is accepted: many authorization servers
//!   omit it, and the audience check already keeps out tokens minted for someone else (an ID
//!   token's audience is the client, not this resource).
//!
//! The algorithm never comes from the token alone: the HS256 secret verifies only HS256, and each
//! JWKS key verifies only its own algorithm. A token whose header names another algorithm
//! (`none`, HS256 "signed" with an RSA public key, …) is refused before any signature check.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::error::Reason;
#[cfg(feature = "jwks")]
use crate::jwks::JwksCache;
use crate::jwks::VerificationKey;
use crate::principal::{AuthMethod, Principal};
use crate::scopes::{AppScope, ScopeSet};

/// Tokens larger than this are refused before decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Where verification keys come from. `Debug` never prints key material (jsonwebtoken's
/// `DecodingKey` would print an HMAC secret's bytes).
#[derive(Clone)]
pub struct KeySources {
    /// The HS256 key, when a secret is configured.
    pub hs256: Option<Arc<DecodingKey>>,
    /// The JWKS cache, when a JWKS URL is configured or discovered (feature `jwks`).
    #[cfg(feature = "jwks")]
    pub jwks: Option<Arc<JwksCache>>,
}

impl std::fmt::Debug for KeySources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut f = f.debug_struct("KeySources");
        f.field("hs256", &self.hs256.as_ref().map(|_| "[redacted]"));
        #[cfg(feature = "jwks")]
        f.field("jwks", &self.jwks);
        f.finish()
    }
}

/// What a valid token must say.
#[derive(Debug, Clone)]
pub struct ClaimRules {
    /// Required `iss` (the claim is required when this is set).
    pub issuer: Option<String>,
    /// Required `aud` (one of the token's audiences); the claim is always required.
    pub audience: String,
    /// Clock skew allowed for `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// The method recorded in the principal (`Jwt`, or `OAuth` for the resource server).
    pub method: AuthMethod,
    /// RFC 9068: a `typ` header, when present, must be `at+jwt` (or `application/at+jwt`).
    pub access_token_typ: bool,
}

/// Verifies bearer JWTs into principals holding the application's scopes `S`.
pub struct JwtVerifier<S> {
    keys: KeySources,
    rules: ClaimRules,
    // Built once per algorithm: `Validation` holds sets that would be allocated per token.
    validations: Vec<(Algorithm, Validation)>,
    scope: PhantomData<fn() -> S>,
}

impl<S> Clone for JwtVerifier<S> {
    fn clone(&self) -> Self {
        JwtVerifier {
            keys: self.keys.clone(),
            rules: self.rules.clone(),
            validations: self.validations.clone(),
            scope: PhantomData,
        }
    }
}

impl<S> std::fmt::Debug for JwtVerifier<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

const ALGORITHMS: [Algorithm; 8] = [
    Algorithm::HS256,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    iat: Option<f64>,
    scope: Option<String>,
    scp: Option<ScpClaim>,
    tenant: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ScpClaim {
    List(Vec<String>),
    Text(String),
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    typ: Option<String>,
}

impl<S: AppScope> JwtVerifier<S> {
    /// A verifier over the given keys and rules.
    pub fn new(keys: KeySources, rules: ClaimRules) -> Self {
        let validations = ALGORITHMS
            .iter()
            .map(|alg| (*alg, validation(*alg, &rules)))
            .collect();
        JwtVerifier {
            keys,
            rules,
            validations,
            scope: PhantomData,
        }
    }

    /// Verifies `token` and returns its principal, or the reason it is refused.
    pub async fn verify(&self, token: &str) -> Result<Principal<S>, Reason> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Reason::TooLarge);
        }
        let header = raw_header(token)?;
        if self.rules.access_token_typ
            && header
                .typ
                .as_deref()
                .is_some_and(|typ| !is_access_token_typ(typ))
        {
            return Err(Reason::WrongTokenType);
        }
        let alg = header.alg.as_deref().ok_or(Reason::Malformed)?;
        let key = self.key_for(alg, header.kid.as_deref()).await?;
        if alg_name(key.algorithm) != alg {
            return Err(Reason::BadAlgorithm);
        }
        let validation = self
            .validations
            .iter()
            .find(|(a, _)| *a == key.algorithm)
            .map(|(_, v)| v)
            .ok_or(Reason::BadAlgorithm)?;
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, validation)
            .map_err(|e| reason_of(e.kind()))?;
        if let Some(iat) = data.claims.iat
            && iat > unix_now() + self.rules.leeway.as_secs_f64()
        {
            return Err(Reason::IssuedInFuture);
        }
        self.principal(data.claims)
    }

    async fn key_for(&self, alg: &str, kid: Option<&str>) -> Result<VerificationKey, Reason> {
        if alg == "HS256" {
            // HS256 only ever verifies with the configured secret, never with a JWKS key.
            return match &self.keys.hs256 {
                Some(key) => Ok(VerificationKey {
                    key: key.clone(),
                    algorithm: Algorithm::HS256,
                }),
                None => Err(Reason::BadAlgorithm),
            };
        }
        if !matches!(
            alg,
            "RS256" | "RS384" | "RS512" | "PS256" | "ES256" | "ES384" | "EdDSA"
        ) {
            return Err(Reason::BadAlgorithm);
        }
        #[cfg(feature = "jwks")]
        if let Some(jwks) = &self.keys.jwks {
            return jwks.key(kid).await;
        }
        let _ = kid;
        Err(Reason::BadAlgorithm)
    }

    fn principal(&self, claims: Claims) -> Result<Principal<S>, Reason> {
        let subject = claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or(Reason::MissingClaim)?;
        let mut scopes = claims
            .scope
            .as_deref()
            .map(ScopeSet::<S>::from_space_separated)
            .unwrap_or_default();
        match claims.scp {
            Some(ScpClaim::List(list)) => {
                for scope in list.iter().filter_map(|s| S::parse(s)) {
                    scopes.insert(scope);
                }
            }
            Some(ScpClaim::Text(text)) => {
                scopes = scopes.union(ScopeSet::from_space_separated(&text));
            }
            None => {}
        }
        let tenant = claims
            .tenant
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| subject.clone());
        Ok(Principal {
            subject,
            tenant,
            scopes,
            method: self.rules.method,
        })
    }
}

fn validation(alg: Algorithm, rules: &ClaimRules) -> Validation {
    let mut validation = Validation::new(alg);
    validation.leeway = rules.leeway.as_secs();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation.set_audience(&[&rules.audience]);
    match &rules.issuer {
        Some(iss) => {
            validation.set_required_spec_claims(&["exp", "aud", "iss"]);
            validation.set_issuer(&[iss]);
        }
        None => validation.set_required_spec_claims(&["exp", "aud"]),
    }
    validation
}

/// RFC 9068 §4: `at+jwt`, or its media type form `application/at+jwt`, in any case.
fn is_access_token_typ(typ: &str) -> bool {
    let typ = typ.trim();
    let bare = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    bare.eq_ignore_ascii_case("at+jwt")
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Reads the header without trusting it: an unknown `alg` (such as `none`) is a
/// [`Reason::BadAlgorithm`], not a parse failure.
fn raw_header(token: &str) -> Result<RawHeader, Reason> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reason::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| Reason::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| Reason::Malformed)
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
    }
}

fn reason_of(kind: &ErrorKind) -> Reason {
    match kind {
        ErrorKind::ExpiredSignature => Reason::Expired,
        ErrorKind::ImmatureSignature => Reason::NotYetValid,
        ErrorKind::InvalidSignature => Reason::BadSignature,
        ErrorKind::InvalidAudience => Reason::WrongAudience,
        ErrorKind::InvalidIssuer => Reason::WrongIssuer,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => Reason::BadAlgorithm,
        ErrorKind::MissingRequiredClaim(_) => Reason::MissingClaim,
        _ => Reason::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_without_three_parts_is_malformed() {
        assert_eq!(raw_header("abc").err(), Some(Reason::Malformed));
        assert_eq!(raw_header("a.b.c.d").err(), Some(Reason::Malformed));
    }

    #[test]
    fn the_access_token_typ_is_at_jwt_in_either_form_and_any_case() {
        for ok in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+JWT",
        ] {
            assert!(is_access_token_typ(ok), "{ok}");
        }
        for refused in [
            "JWT",
            "jwt",
            "application/jwt",
            "at+jwt2",
            "",
            "application/",
        ] {
            assert!(!is_access_token_typ(refused), "{refused}");
        }
    }

    #[test]
    fn alg_none_header_is_read_not_rejected_by_the_parser() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let parsed = raw_header(&format!("{header}.e30.")).unwrap();
        assert_eq!(parsed.alg.as_deref(), Some("none"));
    }
}
