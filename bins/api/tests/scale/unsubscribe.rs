//! The same unsubscribe sent to three replicas at once reaches the sender's one-click endpoint
//! once: the claim is a transaction under a PostgreSQL advisory lock on the subscription.

use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::{Cluster, KEY, Postgres};
use quietbox_testkit::one_click::Endpoint;

fn newsletter(from: &str, list: &str, unsubscribe: &str) -> String {
    format!(
        "From x@example.com Mon Nov 23 09:00:00 2026\nFrom: {from}\nSubject: news\nDate: Mon, 23 Nov 2026 09:00:00 +0000\nList-Id: <{list}>\nList-Unsubscribe: <{unsubscribe}>\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\nX-Gmail-Labels: Inbox,Unread\n\nbody\n\n"
    )
}

/// Sends `body` to all three replicas at once; returns the three answers.
async fn race(cluster: &Cluster, body: Value, idempotency_key: Option<&str>) -> Vec<(u16, Value)> {
    let sends: Vec<_> = (0..3)
        .map(|i| {
            let mut request = cluster
                .client
                .post(cluster.node(i).url("/v1/unsubscribe"))
                .header("x-api-key", KEY)
                .json(&body);
            if let Some(key) = idempotency_key {
                request = request.header("idempotency-key", key);
            }
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for send in sends {
        answers.push(send.await.unwrap());
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_unsubscribe_sent_to_three_replicas_at_once_goes_out_once() {
    let Some(pg) = Postgres::start().await else {
        return;
    };
    // Slow answers: the racing requests arrive while the first POST is still in flight.
    let endpoint = Endpoint::start(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join("inbox.mbox");
    std::fs::write(
        &mbox,
        newsletter(
            "\"Race News\" <news@race.example.com>",
            "news.race.example.com",
            &endpoint.url("/u/news"),
        ) + &newsletter(
            "\"Race Deals\" <deals@race.example.com>",
            "deals.race.example.com",
            &endpoint.url("/u/deals"),
        ),
    )
    .unwrap();
    let mbox = mbox.display().to_string();
    let cluster = Cluster::start(
        3,
        Some(&pg),
        None,
        &[
            ("LOCAL_MBOX", &mbox),
            ("QUIETBOX_TEST_UNSUBSCRIBE_LOOPBACK", "true"),
        ],
    );
    // Every replica has scanned (and so knows the senders) before the race.
    for i in 0..3 {
        let scan = cluster.post(i, "/v1/mail/scan", json!({})).await;
        assert_eq!(scan.status(), 200);
    }

    let with_key = race(
        &cluster,
        json!({"sender": "news@race.example.com"}),
        Some("race-1"),
    )
    .await;
    let without_key = race(&cluster, json!({"sender": "deals@race.example.com"}), None).await;
    let (news, deals) = (endpoint.hits("/u/news"), endpoint.hits("/u/deals"));
    eprintln!(
        "FIGURE racing unsubscribe, 3 replicas at once: {news} outbound request(s) with one Idempotency-Key, {deals} without a key"
    );
    for (status, body) in with_key.iter().chain(&without_key) {
        assert_eq!(*status, 200, "{body}");
    }
    assert_eq!(news, 1, "same Idempotency-Key: {with_key:?}");
    assert_eq!(deals, 1, "same sender: {without_key:?}");
    let unsubscribed = |answers: &[(u16, Value)]| {
        answers
            .iter()
            .filter(|(_, b)| b["result"] == "unsubscribed")
            .count()
    };
    assert_eq!(unsubscribed(&without_key), 1, "{without_key:?}");
    // One key, one answer: the two requests that lost the race replay the winner's.
    assert_eq!(unsubscribed(&with_key), 3, "{with_key:?}");
    assert!(
        with_key.iter().all(|a| a.1 == with_key[0].1),
        "{with_key:?}"
    );
    let history: Value = cluster
        .get(2, "/v1/unsubscribe/history")
        .await
        .json()
        .await
        .unwrap();
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{history}");
    assert!(
        entries.iter().all(|e| e["status"] == "succeeded"),
        "{history}"
    );
    pg.drop_schema().await;
}
