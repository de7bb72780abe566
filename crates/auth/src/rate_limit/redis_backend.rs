//! The shared backend (feature `redis`): the GCRA bucket of each (tenant, operation) lives in
//! Redis, so every replica takes from the same budget.
//!
//! Each request is one `EVALSHA` of [`GCRA_SCRIPT`] (Redis runs a script atomically, so two
//! replicas can never both take the last token). The script reads the time from Redis (`TIME`),
//! so the replicas' clocks do not matter. The connection is a `redis` `ConnectionManager`: when
//! Redis goes away it reconnects by itself, and a script lost with a Redis restart is loaded
//! again on the `NOSCRIPT` answer.

use std::collections::HashMap;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{BackendError, Decision, Quota};
use crate::error::ConfigError;

/// GCRA in one atomic step. `KEYS[1]` holds the bucket's theoretical arrival time (TAT) in
/// microseconds; `ARGV[1]` is the emission interval and `ARGV[2]` the burst. Returns
/// `{1, 0}` when allowed, `{0, wait_us}` when not. The key expires when the bucket is full
/// again, so idle tenants cost no memory.
pub const GCRA_SCRIPT: &str = r#"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
return {1, 0}
"#;

/// Longest a request waits for Redis before the limiter falls back to its failure policy.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// GCRA buckets in Redis.
#[derive(Clone)]
pub struct RedisBuckets {
    connection: ConnectionManager,
    script: ::redis::Script,
    prefix: String,
    /// The quota of operations without one of their own.
    default: Gcra,
    /// Operations with their own quota.
    per_operation: HashMap<String, Gcra>,
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
            interval_us: 60_000_000 / u64::from(quota.per_minute.max(1)),
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

    /// Takes one request from the bucket of `(tenant, operation)`: one script call.
    pub async fn take(&self, tenant: &str, operation: &str) -> Result<Decision, BackendError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(self.key(tenant, operation));
        let gcra = self
            .per_operation
            .get(operation)
            .copied()
            .unwrap_or(self.default);
        invocation.arg(gcra.interval_us).arg(gcra.burst);
        let call = invocation.invoke_async::<(i64, i64)>(&mut connection);
        let (allowed, wait_us) = tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| BackendError(format!("no answer from Redis in {CALL_TIMEOUT:?}")))?
            .map_err(|e| BackendError(e.to_string()))?;
        Ok(if allowed == 1 {
            Decision::Allowed
        } else {
            let wait = u64::try_from(wait_us).unwrap_or(0);
            Decision::Limited(Duration::from_micros(wait).max(Duration::from_millis(1)))
        })
    }
}
