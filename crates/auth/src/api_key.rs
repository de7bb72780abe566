//! The static API key, compared in constant time.
//!
//! HTTP parsers trim trailing whitespace of header values (RFC 9110), so the key is compared to
//! the parsed header value, never to raw bytes.

use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// Checks a presented key against the configured one.
#[derive(Debug, Clone)]
pub struct ApiKeyVerifier {
    key: Secret,
}

impl ApiKeyVerifier {
    /// `None` when the configured key is empty: an empty key would let anyone in.
    pub fn new(key: Secret) -> Option<Self> {
        if key.is_blank() {
            None
        } else {
            Some(ApiKeyVerifier { key })
        }
    }

    /// Whether `presented` is the key. Takes the same time for any key of the same length; the
    /// length itself is not secret enough to matter (it is not attacker-searchable byte by byte).
    pub fn verify(&self, presented: &str) -> bool {
        let expected = self.key.expose().as_bytes();
        let presented = presented.as_bytes();
        expected.len() == presented.len() && bool::from(expected.ct_eq(presented))
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
    fn an_empty_key_cannot_be_configured() {
        assert!(ApiKeyVerifier::new(Secret::new("")).is_none());
        assert!(ApiKeyVerifier::new(Secret::new("   ")).is_none());
    }
}
