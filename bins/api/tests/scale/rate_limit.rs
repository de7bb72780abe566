//! The rate limit across replicas: one budget in Redis, and what happens while Redis is down.

use std::time::{Duration, Instant};

use quietbox_testkit::redis_server::RedisServer;
use serde_json::{Value, json};

use crate::cluster::{Cluster, Postgres, metric_sum};

const BURST: u64 = 10;
/// One a minute: a run of a few seconds earns no refill, so "burst plus refill" is exact.
const PER_MIN: u64 = 1;

/// Sends 60 scans round-robin over the cluster; returns (granted, refused with 429, elapsed).
async fn sixty_scans(cluster: &Cluster) -> (u64, u64, Duration) {
    let started = Instant::now();
    let (mut granted, mut limited) = (0, 0);
    for i in 0..60 {
        let response = cluster.post(i, "/v1/mail/scan", json!({"limit": 1})).await;
        match response.status().as_u16() {
            200 => granted += 1,
            429 => {
                assert!(response.headers().contains_key("retry-after"));
                limited += 1;
            }
            other => panic!("scan answered {other}: {}", response.text().await.unwrap()),
        }
    }
    (granted, limited, started.elapsed())
}

/// What one limiter would grant: the burst plus the tokens refilled while the run lasted.
fn one_budget(elapsed: Duration) -> u64 {
    BURST + elapsed.as_secs() * PER_MIN / 60
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_one_redis_grant_one_budget_not_three() {
    let Some(pg) = Postgres::start().await else {
        return;
    };
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let limits = [("RATE_LIMIT_PER_MIN", "1"), ("RATE_LIMIT_BURST", "10")];
    let cluster = Cluster::start(3, Some(&pg), Some(&redis), &limits);
    let (granted, limited, elapsed) = sixty_scans(&cluster).await;
    eprintln!(
        "FIGURE requests granted of 60 (3 replicas, redis backend, burst {BURST}, {PER_MIN}/min): {granted} granted, {limited} refused with 429, in {elapsed:?}"
    );
    assert_eq!(
        granted,
        one_budget(elapsed),
        "the replicas shared one budget"
    );
    assert_eq!(granted + limited, 60);
    let mut refused = 0;
    for i in 0..3 {
        let metrics = cluster.metrics(i).await;
        refused += metric_sum(&metrics, "rate_limited_total", "operation=\"scan\"");
    }
    assert_eq!(refused, limited, "every refusal was counted by its replica");
    pg.drop_schema().await;
}

/// The control: the same run on the memory backend grants each replica its own budget, which
/// is what the Redis backend exists to prevent (and shows the test above can fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_with_memory_buckets_grant_three_budgets() {
    let limits = [("RATE_LIMIT_PER_MIN", "1"), ("RATE_LIMIT_BURST", "10")];
    let cluster = Cluster::start(3, None, None, &limits);
    let (granted, _, elapsed) = sixty_scans(&cluster).await;
    eprintln!("FIGURE requests granted of 60 (3 replicas, memory backend): {granted}");
    assert_eq!(granted, 3 * one_budget(elapsed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_stopped_mutations_get_a_503_reads_are_served_and_redis_back_heals_it() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let limits = [("RATE_LIMIT_PER_MIN", "600"), ("RATE_LIMIT_BURST", "100")];
    let cluster = Cluster::start(3, None, Some(&redis), &limits);
    let dry_run = json!({"sender": "deals@shop.example.com", "dry_run": true});
    for i in 0..3 {
        let response = cluster.post(i, "/v1/unsubscribe", dry_run.clone()).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }

    redis.stop();
    for i in 0..3 {
        let refused = cluster.post(i, "/v1/unsubscribe", dry_run.clone()).await;
        assert_eq!(refused.status(), 503);
        assert_eq!(
            refused.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(refused.headers()["retry-after"], "1");
        let problem: Value = refused.json().await.unwrap();
        assert_eq!(problem["code"], "rate_limit_unavailable", "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("rate limiter"),
            "{problem}"
        );
        let scan = cluster.post(i, "/v1/mail/scan", json!({"limit": 1})).await;
        assert_eq!(scan.status(), 200, "reads fail open");
        let candidates = cluster.get(i, "/v1/unsubscribe/candidates").await;
        assert_eq!(candidates.status(), 200);
    }
    for i in 0..3 {
        let metrics = cluster.metrics(i).await;
        assert!(
            metric_sum(
                &metrics,
                "rate_limit_backend_errors_total",
                "backend=\"redis\""
            ) >= 2,
            "{metrics}"
        );
        assert!(
            cluster
                .node(i)
                .logs()
                .contains("rate-limit backend failing"),
            "the outage is logged"
        );
    }

    redis.restart();
    let back = Instant::now();
    for i in 0..3 {
        // The same processes: their connection managers reconnect on their own.
        let mut status = 0;
        for _ in 0..100 {
            status = cluster
                .post(i, "/v1/unsubscribe", dry_run.clone())
                .await
                .status()
                .as_u16();
            if status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            status, 200,
            "node {i} did not recover after Redis came back"
        );
    }
    eprintln!(
        "FIGURE Redis outage: mutations 503 rate_limit_unavailable, reads 200; all 3 replicas normal {:?} after Redis restarted",
        back.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        cluster
            .node(0)
            .logs()
            .contains("rate-limit backend answers again")
    );
}
