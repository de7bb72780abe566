//! The scheduler on three replicas with a one-second cron: every tick runs on exactly one node
//! (a lease per job plus a claim of each occurrence under a primary key in PostgreSQL).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::cluster::{Cluster, Postgres, metric_sum};

/// The occurrences each node's log says it ran (`LOG_FORMAT=json`).
fn runs_logged(logs: &str) -> Vec<DateTime<Utc>> {
    logs.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        // The runtime flattens event fields into the line.
        .filter(|entry| entry["message"] == "scheduled job ran")
        .filter_map(|entry| {
            let text = entry["occurrence"].as_str()?;
            // `%occurrence` is chrono's Display: `2026-11-25 16:40:01 UTC`.
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S UTC")
                .ok()
                .map(|t| t.and_utc())
                .or_else(|| text.parse().ok())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_schedulers_with_a_one_second_cron_run_each_tick_exactly_once() {
    let Some(pg) = Postgres::start().await else {
        return;
    };
    let cluster = Cluster::start(
        3,
        Some(&pg),
        None,
        &[
            ("SCHEDULER_ENABLED", "true"),
            ("DIGEST_CRON", "* * * * * *"),
            ("LOG_FORMAT", "json"),
        ],
    );
    // Ten ticks, and a little for the last one to finish.
    tokio::time::sleep(Duration::from_millis(10_500)).await;

    let mut per_tick: BTreeMap<DateTime<Utc>, usize> = BTreeMap::new();
    let mut per_node = Vec::new();
    let mut counted = 0;
    for (i, node) in cluster.nodes.iter().enumerate() {
        let runs = runs_logged(&node.logs());
        per_node.push(runs.len());
        for occurrence in runs {
            *per_tick.entry(occurrence).or_default() += 1;
        }
        counted += metric_sum(
            &cluster.metrics(i).await,
            "scheduler_runs_total",
            "job=\"digest\"",
        );
    }
    let claims: Vec<String> = sqlx::query_scalar(
        "SELECT key FROM idempotency WHERE key LIKE 'scheduler:digest:2%' ORDER BY key",
    )
    .fetch_all(pg.store.pool())
    .await
    .unwrap();
    let last_run = per_tick.keys().next_back().copied();
    // A claim after the last logged run belongs to a run still in flight when the logs were
    // read; every earlier claim must have run, once.
    let claimed: Vec<DateTime<Utc>> = claims
        .iter()
        .filter_map(|k| k.strip_prefix("scheduler:digest:"))
        .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| Some(*t) <= last_run)
        .collect();
    let runs: Vec<usize> = per_tick.values().copied().collect();
    let ticks: Vec<&DateTime<Utc>> = per_tick.keys().collect();
    let skipped: i64 = ticks
        .windows(2)
        .map(|pair| (*pair[1] - *pair[0]).num_seconds() - 1)
        .sum();
    eprintln!(
        "FIGURE scheduler, 3 replicas, 1 s cron, ~10 s: {} ticks ran, runs per tick {runs:?}, runs per node {per_node:?}, {} ticks skipped (all nodes busy past the next tick: only the latest missed one runs)",
        per_tick.len(),
        skipped
    );
    assert!(
        per_tick.values().all(|&n| n == 1),
        "a tick ran twice: {per_tick:?}"
    );
    assert!(ticks.len() >= 3, "the schedulers ran: {per_tick:?}");
    assert_eq!(
        claimed,
        per_tick.keys().copied().collect::<Vec<_>>(),
        "every claimed tick ran, on one node"
    );
    assert_eq!(
        counted as usize,
        per_tick.len(),
        "metrics agree with the logs"
    );
    pg.drop_schema().await;
}
