//! Incident mode across replicas: started through one node's CLI, it holds on every replica at
//! once (each mutation reads it from PostgreSQL: nothing to wait for) and lapses everywhere at
//! its TTL.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::{BIN, Cluster, Postgres};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_started_on_one_node_refuses_mutations_on_every_replica_until_its_ttl() {
    let Some(pg) = Postgres::start().await else {
        return;
    };
    let cluster = Cluster::start(3, Some(&pg), None, &[]);
    for i in 0..3 {
        assert_eq!(cluster.keep_sender(i).await.status(), 200);
    }

    let output = quietbox_testkit::binary::command(BIN, &cluster.envs[0])
        .args(["incident", "start", "--ttl", "3s", "--reason", "drill"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let started = Instant::now();
    // The first mutation after the CLI returned, on every replica, is already refused: no
    // replica holds a stale copy of the incident.
    let mut propagation = Vec::new();
    for i in 0..3 {
        let refused = cluster.keep_sender(i).await;
        propagation.push(started.elapsed());
        assert_eq!(refused.status(), 503, "replica {i} still accepts mutations");
        let problem: Value = refused.json().await.unwrap();
        assert_eq!(problem["code"], "incident_mode_active");
        assert!(problem["detail"].as_str().unwrap().contains("drill"));
        let read = cluster.get(i, "/v1/unsubscribe/history").await;
        assert_eq!(read.status(), 200, "reads go on during an incident");
    }
    eprintln!(
        "FIGURE incident propagation: refused on replicas 1, 2, 3 at {:?} after the CLI returned (first request each)",
        propagation
    );

    tokio::time::sleep(Duration::from_millis(3300).saturating_sub(started.elapsed())).await;
    for i in 0..3 {
        assert_eq!(
            cluster.keep_sender(i).await.status(),
            200,
            "replica {i}: the incident lapsed at its TTL"
        );
    }
    pg.drop_schema().await;
}
