//! The static API key, compared in constant time whatever the lengths.
//!
//! Both the configured and the presented key are hashed with SHA-256 and the two 32-byte
//! digests are compared with `subtle`: the comparison never stops early, not even on a length
//! mismatch, so the time it takes says nothing about the key (neither its bytes nor its length).
//! Only the digest of the configured key is kept.
//!
//! HTTP parsers trim trailing whitespace of header values (RFC 9110), so the key is compared to
//! the parsed header value, never to raw bytes.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// Checks a presented key against the configured one. `Debug` prints nothing of the key.
#[derive(Clone)]
pub struct ApiKeyVerifier {
    digest: [u8; 32],
}

impl std::fmt::Debug for ApiKeyVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyVerifier")
            .field("key", &"[redacted]")
            .finish()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl ApiKeyVerifier {
    /// `None` when the configured key is empty: an empty key would let anyone in.
    pub fn new(key: Secret) -> Option<Self> {
        if key.is_blank() {
            None
        } else {
            Some(ApiKeyVerifier {
                digest: digest(key.expose().as_bytes()),
            })
        }
    }

    /// Whether `presented` is the key: the SHA-256 digests of both are compared in constant
    /// time, so neither the key's bytes nor its length leak through timing.
    pub fn verify(&self, presented: &str) -> bool {
        bool::from(digest(presented.as_bytes()).ct_eq(&self.digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_key_is_accepted() {
        let verifier = ApiKeyVerifier::new(Secret::new("s3cret-key")).unwrap();
        assert!(verifier.verify("s3cret-key"));
        assert!(!verifier.verify("s3cret-kez"));
        assert!(!verifier.verify("s3cret-key "));
        assert!(!verifier.verify(""));
    }

    #[test]
    fn keys_of_other_lengths_are_refused_and_an_equal_key_of_any_length_accepted() {
        let key = "k".repeat(40);
        let verifier = ApiKeyVerifier::new(Secret::new(key.clone())).unwrap();
        assert!(verifier.verify(&key));
        assert!(!verifier.verify(&key[..39]), "a prefix");
        assert!(!verifier.verify(&format!("{key}k")), "one byte longer");
        assert!(!verifier.verify(&"k".repeat(4096)), "much longer");
        assert!(!verifier.verify("k"));
        for length in [1, 31, 32, 33, 64, 1000] {
            let key = "x".repeat(length);
            let verifier = ApiKeyVerifier::new(Secret::new(key.clone())).unwrap();
            assert!(verifier.verify(&key), "{length}");
            assert!(!verifier.verify(&"x".repeat(length + 1)), "{length}");
        }
    }

    #[test]
    fn the_verifier_keeps_no_copy_of_the_key_and_prints_none() {
        let verifier = ApiKeyVerifier::new(Secret::new("s3cret-key")).unwrap();
        assert!(!format!("{verifier:?}").contains("s3cret"));
        assert_eq!(std::mem::size_of::<ApiKeyVerifier>(), 32, "only the digest");
    }

    #[test]
    fn an_empty_key_cannot_be_configured() {
        assert!(ApiKeyVerifier::new(Secret::new("")).is_none());
        assert!(ApiKeyVerifier::new(Secret::new("   ")).is_none());
    }
}
