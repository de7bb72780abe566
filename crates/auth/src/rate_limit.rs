//! Per-tenant, per-operation rate limits: one GCRA bucket per (tenant, operation), kept in this
//! process ([`RateLimiter::memory`], `governor`) or in Redis ([`RateLimiter::redis`], feature
//! `redis`) so that several replicas together grant what one would.
//!
//! The default is 30 requests a minute with a burst of 5, per tenant and operation, so one
//! tenant's scans never eat another tenant's budget or its own unsubscribe budget. An operation
//! can have a [`Quota`] of its own ([`RateLimiter::with_quota`]), e.g. a larger one for cheap
//! reads; both backends apply it the same way.
//!
//! In memory, the buckets of idle tenants are forgotten by themselves (see [`MemoryBuckets`]);
//! in Redis, a key expires once its bucket is full again.
//!
//! When the backend cannot answer (Redis down or slow), the limiter neither hangs nor guesses:
//! it logs the failure (once per outage, and once on recovery), counts it in
//! `rate_limit_backend_errors_total{backend}`, and answers per the [`FailurePolicy`]: by default
//! mutations are refused ([`AuthError::LimiterUnavailable`], a 503) and reads are let through.
//! The next request asks the backend again, so it recovers by itself.

mod memory;
#[cfg(feature = "redis")]
mod redis_backend;

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::error::AuthError;
use crate::scopes::AppScope;

pub use memory::MemoryBuckets;
#[cfg(feature = "redis")]
pub use redis_backend::{GCRA_SCRIPT, RedisBuckets};

/// What a backend says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Within budget (one token taken).
    Allowed,
    /// Over budget: retry after this long.
    Limited(Duration),
}

/// A budget: `per_minute` sustained, `burst` at once. Zero values are raised to 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests per minute, sustained.
    pub per_minute: u32,
    /// Requests at once (the bucket's size).
    pub burst: u32,
}

/// A backend could not answer. The text never holds a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate-limit backend unavailable: {0}")]
pub struct BackendError(pub String);

/// Where the buckets live. Both backends answer the same question the same way.
#[derive(Debug)]
pub enum Backend {
    /// This process's memory.
    Memory(MemoryBuckets),
    /// Redis, shared by every replica.
    #[cfg(feature = "redis")]
    Redis(RedisBuckets),
}

impl Backend {
    /// Takes one request from the bucket of `(tenant, operation)`.
    pub async fn take(&self, tenant: &str, operation: &str) -> Result<Decision, BackendError> {
        match self {
            Backend::Memory(buckets) => Ok(buckets.take(tenant, operation)),
            #[cfg(feature = "redis")]
            Backend::Redis(buckets) => buckets.take(tenant, operation).await,
        }
    }

    /// Gives `operation` its own quota.
    pub fn set_quota(&mut self, operation: &str, quota: Quota) {
        match self {
            Backend::Memory(buckets) => buckets.set_quota(operation, quota),
            #[cfg(feature = "redis")]
            Backend::Redis(buckets) => buckets.set_quota(operation, quota),
        }
    }

    /// The `backend` label of the metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Memory(_) => "memory",
            #[cfg(feature = "redis")]
            Backend::Redis(_) => "redis",
        }
    }
}

/// What to do with a request when the backend cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBackendError {
    /// Let it through unlimited.
    Open,
    /// Refuse it with a 503.
    Closed,
}

/// [`OnBackendError`] for reads and for mutations. The default is `Closed` for mutations (an
/// unlimited burst of unsubscribes is what the limit exists to stop) and `Open` for reads (a
/// limiter outage should not take reading down with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailurePolicy {
    /// For operations not named in `mutations`.
    pub reads: OnBackendError,
    /// For the operations named in `mutations`.
    pub mutations: OnBackendError,
    /// The operation names that are mutations.
    pub mutating_operations: Vec<String>,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        FailurePolicy {
            reads: OnBackendError::Open,
            mutations: OnBackendError::Closed,
            mutating_operations: Vec::new(),
        }
    }
}

impl FailurePolicy {
    /// The default split (reads open, mutations closed) with these operations as mutations.
    pub fn split(mutating_operations: &[&str]) -> Self {
        FailurePolicy {
            mutating_operations: mutating_operations
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            ..FailurePolicy::default()
        }
    }

    /// One answer for every operation (an operator's explicit `open` or `closed`).
    pub fn uniform(mut self, on_error: OnBackendError) -> Self {
        self.reads = on_error;
        self.mutations = on_error;
        self
    }

    fn for_operation(&self, operation: &str) -> OnBackendError {
        if self.mutating_operations.iter().any(|m| m == operation) {
            self.mutations
        } else {
            self.reads
        }
    }
}

/// A keyed rate limiter over one [`Backend`]. It never looks at scopes: `S` is only the scope
/// type of the [`AuthError`] it answers with, so that its 429 and 503 go through the same
/// rejection as the application's 401 and 403.
#[derive(Debug)]
pub struct RateLimiter<S> {
    backend: Backend,
    policy: FailurePolicy,
    /// Whether the last backend call failed (so an outage is logged once, not per request).
    degraded: AtomicBool,
    scope: PhantomData<fn() -> S>,
}

impl<S: AppScope> RateLimiter<S> {
    /// In-memory buckets: `per_minute` sustained, `burst` at once. Zero values are raised to 1.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self::memory(per_minute, burst)
    }

    /// In-memory buckets (one process).
    pub fn memory(per_minute: u32, burst: u32) -> Self {
        Self::with_backend(Backend::Memory(MemoryBuckets::new(per_minute, burst)))
    }

    /// Buckets in the Redis at `url`, under keys starting with `prefix` (see
    /// [`RedisBuckets::connect`]; connects lazily, so Redis may be down at start-up).
    #[cfg(feature = "redis")]
    pub fn redis(
        url: &str,
        prefix: &str,
        per_minute: u32,
        burst: u32,
    ) -> Result<Self, crate::ConfigError> {
        Ok(Self::with_backend(Backend::Redis(RedisBuckets::connect(
            url, prefix, per_minute, burst,
        )?)))
    }

    /// A limiter over `backend` with the default [`FailurePolicy`].
    pub fn with_backend(backend: Backend) -> Self {
        RateLimiter {
            backend,
            policy: FailurePolicy::default(),
            degraded: AtomicBool::new(false),
            scope: PhantomData,
        }
    }

    /// Gives `operation` its own quota (per tenant); operations without one keep the quota the
    /// limiter was built with.
    pub fn with_quota(mut self, operation: &str, quota: Quota) -> Self {
        self.backend.set_quota(operation, quota);
        self
    }

    /// Replaces the failure policy.
    pub fn with_failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Takes one request from the budget of `(tenant, operation)`, or says how long to wait.
    /// Counts refusals in `rate_limited_total{operation}`. When the backend fails, answers per
    /// the failure policy (see the module docs).
    pub async fn check(&self, tenant: &str, operation: &str) -> Result<(), AuthError<S>> {
        match self.backend.take(tenant, operation).await {
            Ok(decision) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        backend = self.backend.name(),
                        "rate-limit backend answers again"
                    );
                }
                match decision {
                    Decision::Allowed => Ok(()),
                    Decision::Limited(retry_after) => {
                        metrics::counter!("rate_limited_total", "operation" => operation.to_owned())
                            .increment(1);
                        Err(AuthError::RateLimited {
                            operation: operation.to_owned(),
                            retry_after,
                        })
                    }
                }
            }
            Err(error) => {
                let backend = self.backend.name();
                metrics::counter!("rate_limit_backend_errors_total", "backend" => backend)
                    .increment(1);
                let on_error = self.policy.for_operation(operation);
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::error!(backend, %error, "rate-limit backend failing: mutations are {} and reads {} until it answers",
                        describe(self.policy.mutations), describe(self.policy.reads));
                } else {
                    tracing::debug!(backend, %error, operation, "rate-limit backend still failing");
                }
                match on_error {
                    OnBackendError::Open => Ok(()),
                    OnBackendError::Closed => Err(AuthError::LimiterUnavailable {
                        operation: operation.to_owned(),
                    }),
                }
            }
        }
    }

    /// Forgets in-memory keys whose budget is full again now (the memory backend also does it
    /// by itself as traffic goes on); Redis keys expire by themselves.
    #[allow(irrefutable_let_patterns)] // without the `redis` feature, memory is the only backend
    pub fn forget_idle(&self) {
        if let Backend::Memory(buckets) = &self.backend {
            buckets.forget_idle();
        }
    }
}

fn describe(on_error: OnBackendError) -> &'static str {
    match on_error {
        OnBackendError::Open => "let through",
        OnBackendError::Closed => "refused",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scopes::test_scopes::Notes;

    type RateLimiter = super::RateLimiter<Notes>;

    #[tokio::test]
    async fn a_burst_is_allowed_then_the_tenant_waits() {
        let limiter = RateLimiter::new(30, 5);
        for _ in 0..5 {
            limiter.check("t1", "scan").await.unwrap();
        }
        let Err(AuthError::RateLimited { retry_after, .. }) = limiter.check("t1", "scan").await
        else {
            panic!("sixth request in a burst of five must be refused");
        };
        assert!(
            retry_after > Duration::ZERO && retry_after <= Duration::from_secs(2),
            "{retry_after:?}"
        );
    }

    #[tokio::test]
    async fn tenants_and_operations_have_separate_budgets() {
        let limiter = RateLimiter::new(30, 1);
        limiter.check("t1", "scan").await.unwrap();
        assert!(limiter.check("t1", "scan").await.is_err());
        limiter.check("t2", "scan").await.unwrap();
        limiter.check("t1", "unsubscribe").await.unwrap();
    }

    #[tokio::test]
    async fn an_operation_with_its_own_quota_gets_that_budget_and_the_others_the_default() {
        let limiter = RateLimiter::new(30, 1).with_quota(
            "candidates",
            Quota {
                per_minute: 600,
                burst: 3,
            },
        );
        for _ in 0..3 {
            limiter.check("t1", "candidates").await.unwrap();
        }
        let Err(AuthError::RateLimited { operation, .. }) = limiter.check("t1", "candidates").await
        else {
            panic!("the fourth read in a burst of three must be refused");
        };
        assert_eq!(operation, "candidates");
        // Another tenant has its own read budget; the default quota still holds elsewhere.
        limiter.check("t2", "candidates").await.unwrap();
        limiter.check("t1", "decision").await.unwrap();
        assert!(limiter.check("t1", "decision").await.is_err());
    }

    #[test]
    fn the_default_policy_refuses_mutations_and_lets_reads_through() {
        let policy = FailurePolicy::split(&["unsubscribe", "digest"]);
        assert_eq!(policy.for_operation("unsubscribe"), OnBackendError::Closed);
        assert_eq!(policy.for_operation("scan"), OnBackendError::Open);
        let open = policy.clone().uniform(OnBackendError::Open);
        assert_eq!(open.for_operation("unsubscribe"), OnBackendError::Open);
        let closed = policy.uniform(OnBackendError::Closed);
        assert_eq!(closed.for_operation("scan"), OnBackendError::Closed);
    }
}
