//! A JWKS cache that a `kid` flood cannot turn against the identity provider.
//!
//! - Keys are cached for the TTL (`AUTH_JWKS_TTL_S`, 600 s by default).
//! - A token with an unknown `kid` triggers at most one refetch per cool-down (30 s), and
//!   concurrent misses share that one fetch (single flight behind a mutex).
//! - When a refetch fails, the keys already cached keep serving past their TTL for a bounded
//!   grace period (stale-on-error), logged and counted in `jwks_stale_served_total`.
//! - Each key's algorithm comes from the key itself (RSA → RS256 unless the JWK names RS384/RS512,
//!   P-256 → ES256, Ed25519 → EdDSA). Symmetric (`oct`) keys are refused: a JWKS never makes HS256
//!   possible.
//! - Keys unfit for verifying signatures are skipped (logged and counted in
//!   `jwks_keys_skipped_total{reason}`): RSA keys under 2048 bits (`rsa_too_small`), keys whose
//!   `use` is present and not `sig` (`use_not_sig`), keys whose `key_ops` is present and lacks
//!   `verify` (`no_verify_op`).
//! - The fetch follows the rules of [`crate::fetch`]: https (http only to loopback), no redirect
//!   to another origin, the body capped at 256 KiB while it streams, no proxy from the
//!   environment.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};

#[cfg(feature = "jwks")]
mod cache;
#[cfg(feature = "jwks")]
pub use cache::JwksCache;

/// Largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// A verification key with the one algorithm it may verify.
#[derive(Clone)]
pub struct VerificationKey {
    /// The key (shared: cloning a verification key must not copy key material).
    pub key: Arc<DecodingKey>,
    /// The only algorithm this key verifies.
    pub algorithm: Algorithm,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

/// Timing knobs of the cache.
#[derive(Debug, Clone, Copy)]
pub struct JwksTiming {
    /// How long fetched keys are fresh.
    pub ttl: Duration,
    /// Least time between two refetches caused by unknown `kid`s.
    pub refetch_cooldown: Duration,
    /// How long past the TTL cached keys keep serving while the endpoint fails.
    pub stale_grace: Duration,
}

impl Default for JwksTiming {
    fn default() -> Self {
        JwksTiming {
            ttl: Duration::from_secs(600),
            refetch_cooldown: Duration::from_secs(30),
            stale_grace: Duration::from_secs(24 * 3600),
        }
    }
}
