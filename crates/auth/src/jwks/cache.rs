//! The cache itself (feature `jwks`): fetching, single flight, stale-on-error, and parsing a
//! JWKS into verification keys.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

use super::{JwksTiming, MAX_JWKS_BYTES, MIN_RSA_BITS, VerificationKey};
use crate::error::Reason;
use crate::fetch::get_capped;

#[derive(Default)]
struct Cached {
    keys: HashMap<String, VerificationKey>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

/// Fetches and caches one JWKS URL.
pub struct JwksCache {
    url: String,
    client: reqwest::Client,
    timing: JwksTiming,
    cached: RwLock<Cached>,
    // Single flight: only the holder of this lock fetches.
    fetch_lock: Mutex<()>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("url", &self.url)
            .field("timing", &self.timing)
            .finish()
    }
}

impl JwksCache {
    /// A cache of `url`; nothing is fetched until a key is needed.
    pub fn new(url: impl Into<String>, client: reqwest::Client, timing: JwksTiming) -> Arc<Self> {
        Arc::new(JwksCache {
            url: url.into(),
            client,
            timing,
            cached: RwLock::new(Cached::default()),
            fetch_lock: Mutex::new(()),
        })
    }

    /// The key for `kid` (or, when the token has no `kid`, the only key of the set).
    pub async fn key(&self, kid: Option<&str>) -> Result<VerificationKey, Reason> {
        let now = Instant::now();
        {
            let cached = self.cached.read().await;
            let fresh = cached
                .fetched_at
                .is_some_and(|t| now.duration_since(t) < self.timing.ttl);
            if fresh {
                if let Some(key) = lookup(&cached.keys, kid) {
                    return Ok(key);
                }
                // Fresh keys but unknown kid: refetch only if the cool-down allows.
                let cooling = cached
                    .last_attempt
                    .is_some_and(|t| now.duration_since(t) < self.timing.refetch_cooldown);
                if cooling {
                    return Err(Reason::UnknownKid);
                }
            }
        }
        self.refresh(now).await;
        let cached = self.cached.read().await;
        if let Some(key) = lookup(&cached.keys, kid) {
            let usable = cached.fetched_at.is_some_and(|t| {
                Instant::now().duration_since(t) < self.timing.ttl + self.timing.stale_grace
            });
            return if usable {
                Ok(key)
            } else {
                Err(Reason::JwksUnavailable)
            };
        }
        if cached.fetched_at.is_none() {
            Err(Reason::JwksUnavailable)
        } else {
            Err(Reason::UnknownKid)
        }
    }

    /// Fetches unless an attempt was made within the cool-down (or while we waited for the
    /// lock). A failure keeps the old keys.
    async fn refresh(&self, wanted_at: Instant) {
        let _guard = self.fetch_lock.lock().await;
        {
            let cached = self.cached.read().await;
            // Someone fetched while we queued, or fetched recently: one fetch per cool-down,
            // whether the cause is a kid miss, an expired TTL or a failing endpoint.
            let recent = cached.last_attempt.is_some_and(|t| {
                t >= wanted_at || wanted_at.duration_since(t) < self.timing.refetch_cooldown
            });
            if recent {
                return;
            }
        }
        let result = self.fetch().await;
        let mut cached = self.cached.write().await;
        cached.last_attempt = Some(Instant::now());
        match result {
            Ok(keys) => {
                cached.keys = keys;
                cached.fetched_at = Some(Instant::now());
            }
            Err(detail) => {
                metrics::counter!("jwks_fetch_errors_total").increment(1);
                if cached.keys.is_empty() {
                    tracing::warn!(url = %self.url, detail, "JWKS fetch failed and no keys are cached");
                } else {
                    metrics::counter!("jwks_stale_served_total").increment(1);
                    tracing::warn!(url = %self.url, detail, "JWKS fetch failed; serving cached keys");
                }
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, VerificationKey>, String> {
        let body = get_capped(
            &self.client,
            &self.url,
            MAX_JWKS_BYTES,
            Duration::from_secs(5),
        )
        .await
        .map_err(|e| e.to_string())?;
        parse_jwks(&body)
    }
}

fn lookup(keys: &HashMap<String, VerificationKey>, kid: Option<&str>) -> Option<VerificationKey> {
    match kid {
        Some(kid) => keys.get(kid).cloned(),
        None if keys.len() == 1 => keys.values().next().cloned(),
        None => None,
    }
}

/// Parses a JWKS document into usable keys, skipping keys it cannot use (see the module
/// documentation: weak RSA keys, keys not meant for signatures, unknown algorithms).
pub fn parse_jwks(body: &[u8]) -> Result<HashMap<String, VerificationKey>, String> {
    let set: JwkSet = serde_json::from_slice(body).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = HashMap::new();
    for (index, jwk) in set.keys.iter().enumerate() {
        if let Some(reason) = unfit(jwk) {
            metrics::counter!("jwks_keys_skipped_total", "reason" => reason.as_str()).increment(1);
            tracing::warn!(
                kid = jwk.common.key_id.as_deref().unwrap_or("-"),
                reason = reason.as_str(),
                "JWKS key skipped: {}",
                reason.describe()
            );
            continue;
        }
        let Some(algorithm) = key_algorithm(jwk) else {
            continue;
        };
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        let kid = jwk
            .common
            .key_id
            .clone()
            .unwrap_or_else(|| format!("#{index}"));
        keys.insert(
            kid,
            VerificationKey {
                key: Arc::new(key),
                algorithm,
            },
        );
    }
    Ok(keys)
}

/// Why a key of the set is not used (the `reason` label of `jwks_keys_skipped_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unfit {
    RsaTooSmall,
    UseNotSig,
    NoVerifyOp,
}

impl Unfit {
    fn as_str(self) -> &'static str {
        match self {
            Unfit::RsaTooSmall => "rsa_too_small",
            Unfit::UseNotSig => "use_not_sig",
            Unfit::NoVerifyOp => "no_verify_op",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Unfit::RsaTooSmall => "RSA modulus under 2048 bits (or unreadable)",
            Unfit::UseNotSig => "its \"use\" is not \"sig\"",
            Unfit::NoVerifyOp => "its \"key_ops\" do not include \"verify\"",
        }
    }
}

/// Why `jwk` must not verify signatures, if it must not.
fn unfit(jwk: &Jwk) -> Option<Unfit> {
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return Some(Unfit::UseNotSig);
    }
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return Some(Unfit::NoVerifyOp);
    }
    if let AlgorithmParameters::RSA(params) = &jwk.algorithm
        && rsa_modulus_bits(&params.n).is_none_or(|bits| bits < MIN_RSA_BITS)
    {
        return Some(Unfit::RsaTooSmall);
    }
    None
}

/// The bit length of a base64url RSA modulus (leading zero bytes ignored); `None` when it does
/// not decode.
fn rsa_modulus_bits(n: &str) -> Option<usize> {
    let bytes = URL_SAFE_NO_PAD.decode(n.trim_end_matches('=')).ok()?;
    let first = bytes.iter().position(|b| *b != 0)?;
    let significant = &bytes[first..];
    let top = significant.first()?;
    Some((significant.len() - 1) * 8 + (8 - top.leading_zeros() as usize))
}

/// The one algorithm a JWK may verify, or `None` for keys quietbox refuses.
fn key_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    let declared = jwk.common.key_algorithm;
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => match declared {
            None | Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
            Some(KeyAlgorithm::RS384) => Some(Algorithm::RS384),
            Some(KeyAlgorithm::RS512) => Some(Algorithm::RS512),
            Some(KeyAlgorithm::PS256) => Some(Algorithm::PS256),
            _ => None,
        },
        AlgorithmParameters::EllipticCurve(params) => match (params.curve.clone(), declared) {
            (EllipticCurve::P256, None | Some(KeyAlgorithm::ES256)) => Some(Algorithm::ES256),
            (EllipticCurve::P384, None | Some(KeyAlgorithm::ES384)) => Some(Algorithm::ES384),
            _ => None,
        },
        AlgorithmParameters::OctetKeyPair(params) => match (params.curve.clone(), declared) {
            (EllipticCurve::Ed25519, None | Some(KeyAlgorithm::EdDSA)) => Some(Algorithm::EdDSA),
            _ => None,
        },
        // Symmetric keys in a JWKS would let anyone holding the document sign tokens.
        AlgorithmParameters::OctetKey(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_keys_in_a_jwks_are_refused() {
        let body = br#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#;
        assert!(parse_jwks(body).unwrap().is_empty());
    }

    #[test]
    fn modulus_bits_ignore_leading_zeros() {
        assert_eq!(
            rsa_modulus_bits(&URL_SAFE_NO_PAD.encode([0u8, 0x80, 0])),
            Some(16)
        );
        assert_eq!(
            rsa_modulus_bits(&URL_SAFE_NO_PAD.encode([0x01, 0])),
            Some(9)
        );
        assert_eq!(rsa_modulus_bits(&URL_SAFE_NO_PAD.encode([0u8, 0])), None);
        assert_eq!(rsa_modulus_bits("!!"), None);
        let mut n = vec![0xffu8; 256];
        assert_eq!(rsa_modulus_bits(&URL_SAFE_NO_PAD.encode(&n)), Some(2048));
        n[0] = 0x7f;
        assert_eq!(rsa_modulus_bits(&URL_SAFE_NO_PAD.encode(&n)), Some(2047));
    }

    #[test]
    fn garbage_is_not_a_jwks() {
        assert!(parse_jwks(b"<html>").is_err());
    }
}
