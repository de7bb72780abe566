//! The shared backend (feature `redis`): the GCRA bucket of each (tenant, operation) lives in
//! Redis, so every replica takes from the same budget.
//!
//! Taking is one `EVALSHA` of [`GCRA_SCRIPT`] (Redis runs a script atomically, so two
//! replicas can never both take the last token). The script reads the time from Redis (`TIME`),
//! so the replicas' clocks do not matter. The connection is a `redis` `ConnectionManager`: when
//! Redis goes away it reconnects by itself, and a script lost with a Redis restart is loaded
//! again on the `NOSCRIPT` answer.
//!
//! # Local allowance for large budgets
//!
//! A round trip to Redis per request costs a cheap read a large part of its throughput
//! (measured by `cargo xtask bench`). So for an operation given a quota of its own
//! ([`RedisBuckets::set_quota`]: the cheap reads) whose burst is at least 16, a replica takes up
//! to `batch(burst) = clamp(burst / 8, 1, 64)` tokens in one call and grants them locally for
//! at most [`LEASE`]; the next request after they are used up (or have lapsed) asks Redis
//! again. A refusal is remembered until Redis said the next token comes (at most [`LEASE`]),
//! so an exhausted budget costs no calls either. One call per bucket is in flight at a time
//! per replica; the requests arriving meanwhile wait for it. Operations under the default
//! quota (scans, digests, unsubscribes, decisions) keep one call per request and are granted
//! exactly as before, so a mutation is never granted from tokens taken before an outage.
//!
//! The error this allows, stated for `R` replicas and a batch of `k`:
//! - **never more** than the shared bucket grants: every token is taken from Redis before it is
//!   granted, only its use may come up to [`LEASE`] later;
//! - **at most `R × (k − 1)` fewer** per lease period: the tokens a replica took and did not use
//!   before its lease lapsed are lost (they are not given back), e.g. with 3 replicas and a
//!   burst of 800 (k = 64), at most 189 of a burst, ≈ 24%, and only while the replicas share
//!   a bucket's traffic unevenly close to its limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{BackendError, Decision, Quota};
use crate::error::ConfigError;

/// GCRA in one atomic step, taking up to `ARGV[3]` tokens (1 when absent). `KEYS[1]` holds the
/// bucket's theoretical arrival time (TAT) in microseconds; `ARGV[1]` is the emission interval
/// and `ARGV[2]` the burst. Returns `{granted, 0}` when at least one token was available
/// (granted ≤ wanted), `{0, wait_us}` when not. The key expires when the bucket is full again,
/// so idle tenants cost no memory.
pub const GCRA_SCRIPT: &str = r#"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3]) or 1
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local available = math.floor((now + burst * interval - tat) / interval)
if available < 1 then
  return {0, tat + interval - burst * interval - now}
end
local granted = math.min(wanted, available)
local new_tat = tat + granted * interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
return {granted, 0}
"#;

/// How long tokens taken ahead stay grantable by the replica that took them.
const LEASE: Duration = Duration::from_millis(200);

/// How many tokens a replica takes per call for a bucket of `burst`: one below a burst of 16,
/// then an eighth of the burst, at most 64.
fn batch(burst: u32) -> u32 {
    if burst < 16 {
        1
    } else {
        (burst / 8).clamp(1, 64)
    }
}

/// After a failed refill, requests queued on the same bucket fail at once for this long
/// instead of each waiting for Redis in turn.
const FAILED_FOR: Duration = Duration::from_millis(250);

/// Buckets kept locally beyond which lapsed ones are dropped.
const KEEP_ALLOWANCES: usize = 4096;

/// Longest a request waits for Redis before the limiter falls back to its failure policy.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// GCRA buckets in Redis. Clones share the connection and the local allowances.
#[derive(Clone)]
pub struct RedisBuckets {
    connection: ConnectionManager,
    script: ::redis::Script,
    prefix: String,
    /// The quota of operations without one of their own.
    default: Gcra,
    /// Operations with their own quota.
    per_operation: HashMap<String, Gcra>,
    /// Tokens taken ahead, per bucket key (only buckets whose [`batch`] exceeds one).
    allowances: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<Allowance>>>>>,
}

/// Tokens of one bucket this replica took from Redis and has not granted yet.
#[derive(Debug, Default)]
struct Allowance {
    tokens: u32,
    /// When the tokens lapse (`None`: there are none).
    until: Option<Instant>,
    /// When the last refill failed.
    failed_at: Option<Instant>,
    /// Until when Redis said no token is left.
    refused_until: Option<Instant>,
}

impl Allowance {
    fn lapsed(&self, now: Instant) -> bool {
        self.until.is_none_or(|until| now >= until)
    }
}

/// A quota as the script takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gcra {
    interval_us: u64,
    burst: u32,
}

impl Gcra {
    fn of(quota: Quota) -> Self {
        Gcra {
            // At least 1 µs: the script divides by it.
            interval_us: (60_000_000 / u64::from(quota.per_minute.max(1))).max(1),
            burst: quota.burst.max(1),
        }
    }
}

impl std::fmt::Debug for RedisBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: it is not kept, and never printed.
        f.debug_struct("RedisBuckets")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisBuckets {
    /// Buckets of `per_minute` sustained and `burst` at once (zero is raised to 1), under keys
    /// starting with `prefix`, in the Redis at `url` (`redis://[:password@]host:port[/db]`).
    ///
    /// Connects lazily: a Redis that is down at start-up is not an error here, it is a failing
    /// request later (counted, and answered by the failure policy) until Redis answers. Must be
    /// called inside a Tokio runtime.
    pub fn connect(
        url: &str,
        prefix: &str,
        per_minute: u32,
        burst: u32,
    ) -> Result<Self, ConfigError> {
        // The parser's message could echo the URL, password included: say only what is expected.
        let client = ::redis::Client::open(url).map_err(|_| {
            ConfigError::Invalid(
                "REDIS_URL",
                "is not a redis:// or rediss:// URL such as redis://127.0.0.1:6379".into(),
            )
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            // Reconnection happens in the background on the next call; a request never waits
            // through a long retry ladder.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| ConfigError::Invalid("REDIS_URL", e.to_string()))?;
        Ok(RedisBuckets {
            connection,
            script: ::redis::Script::new(GCRA_SCRIPT),
            prefix: prefix.to_owned(),
            default: Gcra::of(Quota { per_minute, burst }),
            per_operation: HashMap::new(),
            allowances: Arc::default(),
        })
    }

    /// Gives `operation` its own quota (zero values are raised to 1); the others keep the
    /// default one. Its keys are the same as before: a changed quota applies to the bucket as
    /// it stands.
    pub fn set_quota(&mut self, operation: &str, quota: Quota) {
        self.per_operation
            .insert(operation.to_owned(), Gcra::of(quota));
    }

    /// The key of one bucket. The tenant is length-prefixed so that a `:` inside it cannot make
    /// two (tenant, operation) pairs share a key.
    fn key(&self, tenant: &str, operation: &str) -> String {
        format!("{}{}:{tenant}:{operation}", self.prefix, tenant.len())
    }

    /// Takes one request from the bucket of `(tenant, operation)`: one script call, or none
    /// while this replica holds tokens of that bucket taken ahead (see the module docs).
    pub async fn take(&self, tenant: &str, operation: &str) -> Result<Decision, BackendError> {
        let gcra = self
            .per_operation
            .get(operation)
            .copied()
            .unwrap_or(self.default);
        let key = self.key(tenant, operation);
        let batch = match self.per_operation.get(operation) {
            Some(own) => batch(own.burst),
            None => 1,
        };
        if batch == 1 {
            let (_, decision) = self.call(key, gcra, 1).await?;
            return Ok(decision);
        }
        let slot = self.allowance(&key);
        let mut allowance = slot.lock().await;
        let now = Instant::now();
        if allowance.tokens > 0 && !allowance.lapsed(now) {
            allowance.tokens -= 1;
            return Ok(Decision::Allowed);
        }
        if let Some(until) = allowance.refused_until.filter(|until| now < *until) {
            return Ok(Decision::Limited(
                (until - now).max(Duration::from_millis(1)),
            ));
        }
        if allowance
            .failed_at
            .is_some_and(|at| now.duration_since(at) < FAILED_FOR)
        {
            return Err(BackendError(
                "Redis did not answer the last refill of this bucket".into(),
            ));
        }
        match self.call(key, gcra, batch).await {
            Ok((granted, decision)) => {
                allowance.failed_at = None;
                allowance.tokens = granted.saturating_sub(1);
                allowance.until = (granted > 1).then(|| now + LEASE);
                allowance.refused_until = match decision {
                    Decision::Limited(wait) => Some(now + wait.min(LEASE)),
                    Decision::Allowed => None,
                };
                Ok(decision)
            }
            Err(error) => {
                allowance.failed_at = Some(Instant::now());
                Err(error)
            }
        }
    }

    /// The local allowance of bucket `key`, created empty; lapsed ones are dropped when many
    /// are kept.
    fn allowance(&self, key: &str) -> Arc<tokio::sync::Mutex<Allowance>> {
        let mut allowances = self
            .allowances
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = allowances.get(key) {
            return Arc::clone(slot);
        }
        if allowances.len() >= KEEP_ALLOWANCES {
            let now = Instant::now();
            allowances.retain(|_, slot| {
                Arc::strong_count(slot) > 1 || slot.try_lock().map_or(true, |a| !a.lapsed(now))
            });
        }
        let slot = Arc::new(tokio::sync::Mutex::new(Allowance::default()));
        allowances.insert(key.to_owned(), Arc::clone(&slot));
        slot
    }

    /// One script call taking up to `wanted` tokens: how many it got, and the decision for the
    /// request that asked.
    async fn call(
        &self,
        key: String,
        gcra: Gcra,
        wanted: u32,
    ) -> Result<(u32, Decision), BackendError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(key);
        invocation.arg(gcra.interval_us).arg(gcra.burst).arg(wanted);
        let call = invocation.invoke_async::<(i64, i64)>(&mut connection);
        let (granted, wait_us) = tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| BackendError(format!("no answer from Redis in {CALL_TIMEOUT:?}")))?
            .map_err(|e| BackendError(e.to_string()))?;
        let granted = u32::try_from(granted).unwrap_or(0).min(wanted);
        Ok(if granted >= 1 {
            (granted, Decision::Allowed)
        } else {
            let wait = u64::try_from(wait_us).unwrap_or(0);
            (
                0,
                Decision::Limited(Duration::from_micros(wait).max(Duration::from_millis(1))),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bursts_take_one_token_per_call_and_large_ones_an_eighth_up_to_64() {
        for (burst, expected) in [
            (1, 1),
            (5, 1),
            (15, 1),
            (16, 2),
            (100, 12),
            (512, 64),
            (u32::MAX, 64),
        ] {
            assert_eq!(batch(burst), expected, "burst {burst}");
        }
    }

    #[test]
    fn the_fastest_quota_still_has_a_positive_interval() {
        let gcra = Gcra::of(Quota {
            per_minute: u32::MAX,
            burst: 0,
        });
        assert_eq!((gcra.interval_us, gcra.burst), (1, 1));
    }
}
