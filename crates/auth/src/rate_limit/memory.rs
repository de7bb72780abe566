//! Per-tenant, per-operation rate limits (GCRA via `governor`).
//!
//! The default is 30 requests a minute with a burst of 5, per tenant and operation, so one
//! tenant's scans never eat another tenant's budget or its own unsubscribe budget.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter as Governor};

use crate::error::AuthError;

/// A keyed rate limiter.
pub struct RateLimiter {
    limiter: DefaultKeyedRateLimiter<(String, String)>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// `per_minute` sustained, `burst` at once. Zero values are raised to 1.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        RateLimiter {
            limiter: Governor::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from the budget of `(tenant, operation)`, or says how long to wait.
    /// Counts refusals in `rate_limited_total{operation}`.
    pub fn check(&self, tenant: &str, operation: &str) -> Result<(), AuthError> {
        let key = (tenant.to_owned(), operation.to_owned());
        match self.limiter.check_key(&key) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                metrics::counter!("rate_limited_total", "operation" => operation.to_owned())
                    .increment(1);
                let wait = not_until.wait_time_from(self.clock.now());
                Err(AuthError::RateLimited {
                    operation: operation.to_owned(),
                    retry_after: wait.max(Duration::from_millis(1)),
                })
            }
        }
    }

    /// Forgets keys whose budget is full again (call now and then to bound memory).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_tenant_waits() {
        let limiter = RateLimiter::new(30, 5);
        for _ in 0..5 {
            limiter.check("t1", "scan").unwrap();
        }
        let Err(AuthError::RateLimited { retry_after, .. }) = limiter.check("t1", "scan") else {
            panic!("sixth request in a burst of five must be refused");
        };
        assert!(
            retry_after > Duration::ZERO && retry_after <= Duration::from_secs(2),
            "{retry_after:?}"
        );
    }

    #[test]
    fn tenants_and_operations_have_separate_budgets() {
        let limiter = RateLimiter::new(30, 1);
        limiter.check("t1", "scan").unwrap();
        assert!(limiter.check("t1", "scan").is_err());
        limiter.check("t2", "scan").unwrap();
        limiter.check("t1", "unsubscribe").unwrap();
    }
}
