//! The Redis rate-limit backend against a real `redis-server` started for each test: two
//! limiters (two replicas) share one budget, and a Redis outage is answered per the failure
//! policy, then recovered from without a restart.

use std::time::Duration;

use quietbox_auth::{AppScope, FailurePolicy, Quota};

/// The application's scopes, for the limiter's refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotesScope {
    Read,
}

impl AppScope for NotesScope {
    const ALL: &'static [Self] = &[NotesScope::Read];

    fn as_str(self) -> &'static str {
        "notes:read"
    }
}

type RateLimiter = quietbox_auth::RateLimiter<NotesScope>;
type AuthError = quietbox_auth::AuthError<NotesScope>;
use quietbox_testkit::redis_server::RedisServer;

fn limiter(redis: &RedisServer, per_minute: u32, burst: u32) -> RateLimiter {
    RateLimiter::redis(&redis.url(), "test:rate:", per_minute, burst)
        .unwrap()
        .with_failure_policy(FailurePolicy::split(&["unsubscribe"]))
}

#[tokio::test]
async fn two_limiters_on_one_redis_share_one_budget() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = (limiter(&redis, 60, 4), limiter(&redis, 60, 4));
    let mut granted = 0;
    for i in 0..12 {
        let replica = if i % 2 == 0 { &a } else { &b };
        if replica.check("acme", "scan").await.is_ok() {
            granted += 1;
        }
    }
    // A burst of 4; twelve quick requests may see at most one refill (one a second).
    assert!(
        (4..=5).contains(&granted),
        "{granted} granted: the two replicas did not share the bucket"
    );
    let Err(AuthError::RateLimited { retry_after, .. }) = a.check("acme", "scan").await else {
        panic!("the shared bucket is empty");
    };
    assert!(retry_after <= Duration::from_secs(1), "{retry_after:?}");
    // Other tenants and operations have their own buckets, also when the tenant holds a `:`.
    a.check("acme:scan", "x").await.unwrap();
    b.check("other", "scan").await.unwrap();
    a.check("acme", "unsubscribe").await.unwrap();
}

#[tokio::test]
async fn with_redis_down_mutations_are_refused_and_reads_pass_then_it_recovers() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let limiter = limiter(&redis, 600, 100);
    limiter.check("acme", "unsubscribe").await.unwrap();
    redis.stop();
    assert_eq!(
        limiter.check("acme", "unsubscribe").await,
        Err(AuthError::LimiterUnavailable {
            operation: "unsubscribe".into()
        })
    );
    assert_eq!(limiter.check("acme", "scan").await, Ok(()));
    redis.restart();
    // The connection manager reconnects on the next calls; no new limiter is built.
    let mut recovered = false;
    for _ in 0..50 {
        if limiter.check("acme", "unsubscribe").await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "the limiter did not recover after Redis came back"
    );
}

#[tokio::test]
async fn the_budget_refills_at_the_configured_rate() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // 600 a minute: one token every 100 ms.
    let limiter = limiter(&redis, 600, 1);
    limiter.check("acme", "scan").await.unwrap();
    let Err(AuthError::RateLimited { retry_after, .. }) = limiter.check("acme", "scan").await
    else {
        panic!("burst of one");
    };
    assert!(retry_after <= Duration::from_millis(100), "{retry_after:?}");
    tokio::time::sleep(retry_after + Duration::from_millis(20)).await;
    limiter.check("acme", "scan").await.unwrap();
}

#[tokio::test]
async fn an_operation_with_its_own_quota_gets_it_on_every_replica() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let read = Quota {
        per_minute: 60,
        burst: 6,
    };
    let a = limiter(&redis, 60, 2).with_quota("candidates", read);
    let b = limiter(&redis, 60, 2).with_quota("candidates", read);
    let mut granted = 0;
    for i in 0..12 {
        let replica = if i % 2 == 0 { &a } else { &b };
        if replica.check("acme", "candidates").await.is_ok() {
            granted += 1;
        }
    }
    assert!(
        (6..=7).contains(&granted),
        "{granted} reads granted: the read quota (burst 6) was not applied"
    );
    // The default quota (burst 2) still holds for the other operations.
    a.check("acme", "decision").await.unwrap();
    b.check("acme", "decision").await.unwrap();
    assert!(matches!(
        a.check("acme", "decision").await,
        Err(AuthError::RateLimited { .. })
    ));
}

/// How many script calls the Redis at `url` has answered.
async fn script_calls(url: &str) -> u64 {
    let client = ::redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = ::redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut connection)
        .await
        .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[tokio::test]
async fn three_replicas_with_a_large_budget_grant_within_it_with_few_round_trips() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // A cheap read's budget: a burst of 800, refilled at 60 a minute (one a second), so the
    // test sees the burst and at most a few refills. Each replica takes 800 / 8 = 64 (the most)
    // tokens per call.
    let read = Quota {
        per_minute: 60,
        burst: 800,
    };
    let replicas: Vec<_> = (0..3)
        .map(|_| limiter(&redis, 60, 5).with_quota("candidates", read))
        .collect();
    let before = script_calls(&redis.url()).await;
    let mut granted = [0u32; 3];
    // Uneven traffic: replica 0 gets half the requests, 1 and 2 a quarter each.
    for i in 0..1600usize {
        let replica = match i % 4 {
            0 | 1 => 0,
            2 => 1,
            _ => 2,
        };
        if replicas[replica].check("acme", "candidates").await.is_ok() {
            granted[replica] += 1;
        }
    }
    let total: u32 = granted.iter().sum();
    let calls = script_calls(&redis.url()).await - before;
    // Never more than the shared bucket (800 and a refill or two); at most 3 × 63 fewer (the
    // tokens the replicas hold when the bucket runs dry, lost when their lease lapses).
    assert!(
        total <= 802,
        "{granted:?}: {total} granted, over the budget"
    );
    assert!(
        total >= 800 - 3 * 63,
        "{granted:?}: {total} granted, below the stated error"
    );
    // One call per 64 grants while tokens last; refusals are remembered until the next token
    // is due, so the exhausted bucket costs a call per replica and refill at most.
    assert!(
        calls <= u64::from(total) / 64 + 3 * 8,
        "{calls} script calls for 1600 requests: no local allowance"
    );
    // Every replica got its share: none was starved by another's allowance.
    assert!(granted.iter().all(|g| *g >= 150), "{granted:?}");
    // A small budget (the default burst of 5) stays exact, one call per request.
    let mut small = 0;
    for i in 0..12usize {
        if replicas[i % 3].check("acme", "scan").await.is_ok() {
            small += 1;
        }
    }
    assert!((5..=6).contains(&small), "{small} of a burst of 5 granted");
}

#[tokio::test]
async fn tokens_taken_ahead_are_granted_only_during_their_lease() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // Burst 128 (16 tokens per call), refilled once a minute: no refill during the test.
    let read = Quota {
        per_minute: 1,
        burst: 128,
    };
    let a = limiter(&redis, 60, 5).with_quota("candidates", read);
    let b = limiter(&redis, 60, 5).with_quota("candidates", read);
    // a takes 16 with its first request and grants one; b empties the rest of the bucket.
    a.check("acme", "candidates").await.unwrap();
    let mut granted = 0;
    while b.check("acme", "candidates").await.is_ok() {
        granted += 1;
        assert!(granted <= 128, "b was granted more than the bucket");
    }
    assert_eq!(granted, 128 - 16, "a's 16 came out of the shared bucket");
    // a grants what it holds during the lease ...
    for _ in 0..5 {
        a.check("acme", "candidates").await.unwrap();
    }
    // ... and not after: its 10 others lapse, the bucket is empty.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(matches!(
        a.check("acme", "candidates").await,
        Err(AuthError::RateLimited { .. })
    ));
}
