//! Scan throughput against the fake Google with Gmail's per-user quota (250 units/s, 5 units per
//! `messages.get`) and 50 ms of latency per call. Goal: ≥ 95% of the quota-limited rate
//! (≥ 47.5 messages/s), no failed message; an incremental rescan after 50 new messages costs
//! ≤ 60 API calls.
//!
//! Run with: `cargo bench -p quietbox-gmail --bench scan` (`QB_BENCH_MESSAGES=10000` for the
//! full run; the default of 1,000 keeps CI short).

use std::sync::Arc;
use std::time::{Duration, Instant};

use quietbox_core::ports::{MailProvider, NoProgress, ScanRequest};
use quietbox_gmail::google::{GmailProvider, GoogleApi, QuotaBucket, RetryPolicy, TokenManager};
use quietbox_testkit::{FakeGoogle, FakeMessage, Faults};

fn messages(range: std::ops::Range<usize>) -> Vec<FakeMessage> {
    range
        .map(|i| {
            FakeMessage::new(
                &format!("m{i:06}"),
                &format!("s{}@news.example.com", i % 50),
                1_795_000_000_000 + i as i64,
                &[],
            )
        })
        .collect()
}

fn main() {
    let count: usize = std::env::var("QB_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let fake = FakeGoogle::start("owner@example.com").await;
        fake.add_messages(messages(0..count));
        let dir = tempfile::tempdir().expect("temp dir");
        let token_path = dir.path().join("token.json");
        std::fs::write(&token_path, serde_json::json!({"refresh_token": "refresh-1", "token_uri": format!("{}/token", fake.base), "client_id": "c"}).to_string())
            .expect("token file");
        let http = reqwest::Client::new();
        let tokens = Arc::new(TokenManager::load(&token_path, http.clone()).expect("tokens"));
        tokens.access_token().await.expect("first token");
        fake.set_faults(Faults { latency: Duration::from_millis(50), ..Faults::default() });
        let api = GoogleApi::new(http, &fake.base, tokens, Arc::new(QuotaBucket::new(250)), RetryPolicy::default());
        let gmail = GmailProvider::new(api, "owner@example.com", 16);

        let start = Instant::now();
        let batch = gmail.scan(&ScanRequest::default(), &NoProgress).await.expect("full scan");
        let elapsed = start.elapsed().as_secs_f64();
        let rate = batch.messages.len() as f64 / elapsed;
        let quota_rate = 250.0 / 5.0;
        println!("full scan: {} of {count} messages in {elapsed:.1} s = {rate:.1} messages/s ({:.1}% of the quota-limited {quota_rate} messages/s); {} failed; {} API calls, {} x 429",
            batch.messages.len(), rate / quota_rate * 100.0, count - batch.messages.len(), fake.api_calls(), fake.calls("messages.get").saturating_sub(count));

        fake.add_messages(messages(count..count + 50));
        let before = fake.api_calls();
        let again = gmail.scan(&ScanRequest { cursor: batch.cursor, ..Default::default() }, &NoProgress).await.expect("incremental scan");
        println!("incremental rescan after 50 new messages: {} messages, {} API calls", again.messages.len(), fake.api_calls() - before);
    });
}
