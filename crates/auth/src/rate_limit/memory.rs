//! The in-process backend: one GCRA bucket per (tenant, operation) in this process's memory
//! (`governor`). Right for one replica; with several, each grants the full budget.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter as Governor};

use super::Decision;

/// GCRA buckets kept in memory.
pub struct MemoryBuckets {
    limiter: DefaultKeyedRateLimiter<(String, String)>,
    clock: DefaultClock,
}

impl std::fmt::Debug for MemoryBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBuckets").finish_non_exhaustive()
    }
}

impl MemoryBuckets {
    /// `per_minute` sustained, `burst` at once. Zero values are raised to 1.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        MemoryBuckets {
            limiter: Governor::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from the bucket of `(tenant, operation)`.
    pub fn take(&self, tenant: &str, operation: &str) -> Decision {
        let key = (tenant.to_owned(), operation.to_owned());
        match self.limiter.check_key(&key) {
            Ok(()) => Decision::Allowed,
            Err(not_until) => Decision::Limited(
                not_until
                    .wait_time_from(self.clock.now())
                    .max(Duration::from_millis(1)),
            ),
        }
    }

    /// Forgets keys whose bucket is full again.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
    }
}
