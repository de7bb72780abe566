//! The Redis rate-limit backend against a real `redis-server` started for each test: two
//! limiters (two replicas) share one budget, and a Redis outage is answered per the failure
//! policy, then recovered from without a restart.

use std::time::Duration;

use quietbox_auth::{AuthError, FailurePolicy, Quota, RateLimiter};
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
