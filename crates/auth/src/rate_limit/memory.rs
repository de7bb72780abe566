//! The in-process backend: one GCRA bucket per (tenant, operation) in this process's memory
//! (`governor`). Right for one replica; with several, each grants the full budget.
//!
//! Buckets of idle tenants are forgotten: every [`SWEEP_CHECK_EVERY`] requests the backend
//! looks whether [`SWEEP_EVERY`] has passed since the last sweep, and if so drops every bucket
//! that is full again (it would grant the same as a new one) and gives the memory back.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota as GovernorQuota, RateLimiter as Governor};

use super::{Decision, Quota};

/// How many requests pass between two looks at the sweep clock (a look is one atomic add).
pub const SWEEP_CHECK_EVERY: u64 = 1024;

/// The shortest time between two sweeps of idle buckets.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// GCRA buckets kept in memory.
pub struct MemoryBuckets {
    /// Buckets of operations without a quota of their own, keyed by (tenant, operation).
    default: DefaultKeyedRateLimiter<(String, String)>,
    /// Operations with their own quota: one limiter each, keyed by tenant.
    per_operation: HashMap<String, DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
    requests: AtomicU64,
    last_sweep: Mutex<Instant>,
}

impl std::fmt::Debug for MemoryBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBuckets").finish_non_exhaustive()
    }
}

fn governor_quota(quota: Quota) -> GovernorQuota {
    let per_minute = NonZeroU32::new(quota.per_minute).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(quota.burst).unwrap_or(NonZeroU32::MIN);
    GovernorQuota::per_minute(per_minute).allow_burst(burst)
}

impl MemoryBuckets {
    /// `per_minute` sustained, `burst` at once, for every operation. Zero values are raised to 1.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        MemoryBuckets {
            default: Governor::keyed(governor_quota(Quota { per_minute, burst })),
            per_operation: HashMap::new(),
            clock: DefaultClock::default(),
            requests: AtomicU64::new(0),
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    /// Gives `operation` its own quota (zero values are raised to 1); the others keep the
    /// default one.
    pub fn set_quota(&mut self, operation: &str, quota: Quota) {
        self.per_operation
            .insert(operation.to_owned(), Governor::keyed(governor_quota(quota)));
    }

    /// Takes one request from the bucket of `(tenant, operation)`.
    pub fn take(&self, tenant: &str, operation: &str) -> Decision {
        self.maybe_sweep();
        let checked = match self.per_operation.get(operation) {
            Some(limiter) => limiter.check_key(&tenant.to_owned()),
            None => self
                .default
                .check_key(&(tenant.to_owned(), operation.to_owned())),
        };
        match checked {
            Ok(()) => Decision::Allowed,
            Err(not_until) => Decision::Limited(
                not_until
                    .wait_time_from(self.clock.now())
                    .max(Duration::from_millis(1)),
            ),
        }
    }

    fn maybe_sweep(&self) {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        if n % SWEEP_CHECK_EVERY != SWEEP_CHECK_EVERY - 1 {
            return;
        }
        // Another request sweeping already is as good as this one sweeping.
        let Ok(mut last) = self.last_sweep.try_lock() else {
            return;
        };
        if last.elapsed() >= SWEEP_EVERY {
            *last = Instant::now();
            drop(last);
            self.forget_idle();
        }
    }

    /// Forgets buckets that are full again and gives their memory back.
    pub fn forget_idle(&self) {
        self.default.retain_recent();
        self.default.shrink_to_fit();
        for limiter in self.per_operation.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// How many buckets are held now.
    pub fn len(&self) -> usize {
        self.default.len() + self.per_operation.values().map(|l| l.len()).sum::<usize>()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_buckets_are_forgotten_and_busy_ones_kept() {
        // 6000 a minute: a one-token bucket is full again after 10 ms.
        let mut buckets = MemoryBuckets::new(6000, 1);
        buckets.set_quota(
            "candidates",
            Quota {
                per_minute: 6000,
                burst: 1,
            },
        );
        for tenant in 0..100 {
            assert_eq!(
                buckets.take(&format!("t{tenant}"), "scan"),
                Decision::Allowed
            );
            assert_eq!(
                buckets.take(&format!("t{tenant}"), "candidates"),
                Decision::Allowed
            );
        }
        assert_eq!(buckets.len(), 200);
        std::thread::sleep(Duration::from_millis(50));
        buckets.forget_idle();
        assert!(buckets.is_empty(), "{} buckets left", buckets.len());
    }

    #[test]
    fn a_bucket_that_is_not_full_again_is_kept() {
        // 1 a minute: the spent token comes back only after a minute.
        let buckets = MemoryBuckets::new(1, 1);
        assert_eq!(buckets.take("t1", "scan"), Decision::Allowed);
        buckets.forget_idle();
        assert_eq!(buckets.len(), 1);
        assert!(matches!(buckets.take("t1", "scan"), Decision::Limited(_)));
    }

    #[test]
    fn requests_sweep_by_themselves_once_the_sweep_interval_passed() {
        let buckets = MemoryBuckets::new(6000, 1);
        for tenant in 0..10 {
            buckets.take(&format!("idle{tenant}"), "scan");
        }
        std::thread::sleep(Duration::from_millis(20));
        // Pretend the last sweep was long ago.
        *buckets.last_sweep.lock().unwrap() = Instant::now() - SWEEP_EVERY;
        for _ in 0..SWEEP_CHECK_EVERY {
            buckets.take("busy", "scan");
        }
        // The ten idle tenants are gone; the busy one may or may not be (it is refilled fast).
        assert!(buckets.len() <= 1, "{} buckets left", buckets.len());
    }
}
