//! Settings for running several replicas: where the rate-limit buckets live
//! (`RATE_LIMIT_BACKEND`, `REDIS_URL`), what the limiter does while that backend is down
//! (`RATE_LIMIT_ON_ERROR`), and the test builds' switch that lets outbound unsubscribe reach a
//! loopback endpoint.

use super::{RawSettings, Secret, SettingsError, boolean, one_of};

/// `RATE_LIMIT_BACKEND`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitBackend {
    /// Buckets in each process's memory (one replica).
    Memory,
    /// Buckets in Redis, shared by every replica.
    Redis {
        /// `REDIS_URL` (may hold a password).
        url: Secret,
    },
}

/// `RATE_LIMIT_ON_ERROR`: what the limiter does with a request while its backend is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitOnError {
    /// Unset: mutations (unsubscribe, digest) are refused with a 503, reads (scan) pass.
    Split,
    /// `open`: every operation passes unlimited.
    Open,
    /// `closed`: every operation is refused with a 503.
    Closed,
}

/// `RATE_LIMIT_BACKEND` and `REDIS_URL`.
pub(super) fn rate_limit_backend(raw: &RawSettings) -> Result<RateLimitBackend, SettingsError> {
    let redis = one_of(
        "RATE_LIMIT_BACKEND",
        raw.get("RATE_LIMIT_BACKEND").unwrap_or("memory"),
        &[("memory", false), ("redis", true)],
    )?;
    if !redis {
        return Ok(RateLimitBackend::Memory);
    }
    let url = raw.get("REDIS_URL").ok_or_else(|| {
        SettingsError::new("REDIS_URL", "is required when RATE_LIMIT_BACKEND=redis")
    })?;
    // Checked here so a typo stops start-up; the value itself (it may hold a password) is never
    // echoed.
    let scheme = url.trim().split("://").next().unwrap_or_default();
    if !matches!(scheme, "redis" | "rediss") || !url.contains("://") {
        return Err(SettingsError::new(
            "REDIS_URL",
            "must be a redis:// or rediss:// URL such as redis://127.0.0.1:6379",
        ));
    }
    Ok(RateLimitBackend::Redis {
        url: Secret::new(url.trim()),
    })
}

/// `RATE_LIMIT_ON_ERROR`.
pub(super) fn rate_limit_on_error(raw: &RawSettings) -> Result<RateLimitOnError, SettingsError> {
    match raw.get("RATE_LIMIT_ON_ERROR") {
        None => Ok(RateLimitOnError::Split),
        Some(value) => one_of(
            "RATE_LIMIT_ON_ERROR",
            value,
            &[
                ("open", RateLimitOnError::Open),
                ("closed", RateLimitOnError::Closed),
            ],
        ),
    }
}

/// `QUIETBOX_TEST_UNSUBSCRIBE_LOOPBACK`: accepted by debug builds only, so a release binary can
/// never be talked into posting to loopback.
pub(super) fn unsubscribe_loopback(raw: &RawSettings) -> Result<bool, SettingsError> {
    const NAME: &str = "QUIETBOX_TEST_UNSUBSCRIBE_LOOPBACK";
    let on = boolean(NAME, raw.get(NAME).unwrap_or("false"))?;
    if on && !cfg!(debug_assertions) {
        return Err(SettingsError::new(
            NAME,
            "is a test switch that release builds refuse; unset it",
        ));
    }
    Ok(on)
}

#[cfg(test)]
mod tests {
    use super::super::{Binary, Settings};
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let mut env: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.insert("AGENT_API_KEY".into(), "k".into());
        Settings::from_raw(Binary::Api, &RawSettings::load_from(&env)?)
    }

    #[test]
    fn the_memory_backend_and_the_split_failure_policy_are_the_defaults() {
        let s = load(&[]).unwrap();
        assert_eq!(s.rate_limit_backend, RateLimitBackend::Memory);
        assert_eq!(s.rate_limit_on_error, RateLimitOnError::Split);
        assert!(!s.unsubscribe_allow_loopback);
    }

    #[test]
    fn the_redis_backend_needs_a_redis_url_and_never_echoes_it() {
        let err = load(&[("RATE_LIMIT_BACKEND", "redis")]).unwrap_err();
        assert_eq!(err.variable, "REDIS_URL");
        let err = load(&[
            ("RATE_LIMIT_BACKEND", "redis"),
            ("REDIS_URL", "http://:hunter2@cache:6379"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "REDIS_URL");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let s = load(&[
            ("RATE_LIMIT_BACKEND", "redis"),
            ("REDIS_URL", "redis://:hunter2@cache:6379/0"),
        ])
        .unwrap();
        assert!(matches!(
            s.rate_limit_backend,
            RateLimitBackend::Redis { .. }
        ));
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn an_explicit_failure_policy_overrides_the_split() {
        let s = load(&[("RATE_LIMIT_ON_ERROR", "open")]).unwrap();
        assert_eq!(s.rate_limit_on_error, RateLimitOnError::Open);
        let err = load(&[("RATE_LIMIT_ON_ERROR", "maybe")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "RATE_LIMIT_ON_ERROR: \"maybe\" is not one of open, closed"
        );
    }
}
