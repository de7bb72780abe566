//! Resource limits and input hygiene at the HTTP edge (issue 18, items 7, 9 and 11): the
//! header-read timeout, the connection cap, bounded metric labels, rate limits on reads and on
//! sender decisions, and client-controlled control characters kept out of the text log.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{KEY, spawn, token};

fn connect(base: &str) -> TcpStream {
    let addr = base.trim_start_matches("http://");
    TcpStream::connect(addr).unwrap()
}

/// Reads until the server closes the connection or `wait` passes: `(bytes, closed)`.
fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (got, false);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buffer) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buffer[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (got, false);
            }
            // A reset is a close too.
            Err(_) => return (got, true),
        }
    }
}

#[test]
fn a_connection_with_unfinished_headers_is_closed_after_the_header_timeout() {
    let server = spawn(&[("HTTP_HEADER_TIMEOUT_S", "1")]);
    let mut stream = connect(&server.base);
    let started = Instant::now();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: loc")
        .unwrap();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(6));
    let took = started.elapsed();
    assert!(
        closed,
        "the connection was still open after 6 s of unfinished headers"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "closed after {took:?}, not after the 1 s header timeout"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // A complete request on a new connection is still served.
    let mut stream = connect(&server.base);
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5));
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[test]
fn connections_past_the_cap_wait_until_one_closes() {
    let server = spawn(&[("HTTP_MAX_CONNECTIONS", "2")]);
    let first = connect(&server.base);
    let second = connect(&server.base);
    // Let the server accept both before the third arrives.
    std::thread::sleep(Duration::from_millis(300));
    let mut third = connect(&server.base);
    third
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (early, _) = read_until_closed(&mut third, Duration::from_millis(1500));
    assert!(
        early.is_empty(),
        "a third connection was served past HTTP_MAX_CONNECTIONS=2: {}",
        String::from_utf8_lossy(&early)
    );
    drop(first);
    let (answer, _) = read_until_closed(&mut third, Duration::from_secs(5));
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "the waiting connection was not served once a slot freed: {:?}",
        String::from_utf8_lossy(&answer)
    );
    drop(second);
}

#[tokio::test]
async fn a_made_up_method_adds_no_metrics_series() {
    let server = spawn(&[]);
    let name = "X".repeat(5 * 1024);
    let method = reqwest::Method::from_bytes(name.as_bytes()).unwrap();
    let response = server
        .client
        .request(method, server.url("/health"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("XXXXXXXX"),
        "the method name became a label value"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("http_requests_total{") && l.contains("method=\"other\"")),
        "{metrics}"
    );
    // Every label of the request metrics takes a bounded value.
    for line in metrics.lines().filter(|l| l.starts_with("http_request")) {
        assert!(line.len() < 200, "{line}");
    }
}

#[tokio::test]
async fn a_read_answers_429_with_retry_after_once_its_budget_is_spent() {
    let server = spawn(&[
        ("RATE_LIMIT_READ_PER_MIN", "1"),
        ("RATE_LIMIT_READ_BURST", "2"),
    ]);
    let read = |path: &'static str| {
        server
            .client
            .get(server.url(path))
            .bearer_auth(token("unsubscribe:read availability:read"))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(read("/v1/unsubscribe/history").await.unwrap().status(), 200);
    }
    let limited = read("/v1/unsubscribe/history").await.unwrap();
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        limited.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = limited.json().await.unwrap();
    assert_eq!(problem["code"], "rate_limited");
    // Each read has its own bucket: the others are untouched. The API key's principal is
    // another tenant with its own budget.
    for path in [
        "/v1/unsubscribe/candidates",
        "/v1/unsubscribe/compliance",
        "/v1/availability",
    ] {
        assert_eq!(read(path).await.unwrap().status(), 200, "{path}");
    }
    for _ in 0..2 {
        read("/v1/unsubscribe/candidates").await.unwrap();
    }
    assert_eq!(
        read("/v1/unsubscribe/candidates").await.unwrap().status(),
        429,
        "candidates is limited as a read too"
    );
}

#[tokio::test]
async fn a_sender_decision_takes_from_the_mutation_budget() {
    // Mutations: one at once; reads: plenty.
    let server = spawn(&[
        ("RATE_LIMIT_PER_MIN", "1"),
        ("RATE_LIMIT_BURST", "1"),
        ("RATE_LIMIT_READ_PER_MIN", "1000"),
        ("RATE_LIMIT_READ_BURST", "100"),
    ]);
    let decide = |decision: &'static str| {
        server
            .client
            .put(server.url("/v1/senders/offers@travel.example.net/decision"))
            .header("x-api-key", KEY)
            .json(&json!({ "decision": decision }))
            .send()
    };
    let first = decide("keep").await.unwrap();
    assert_eq!(first.status(), 200, "{}", first.text().await.unwrap());
    let second = decide("keep").await.unwrap();
    assert_eq!(second.status(), 429);
    assert!(second.headers().contains_key("retry-after"));
    // The reads have a budget of their own, far larger.
    for _ in 0..20 {
        let read = server
            .client
            .get(server.url("/v1/unsubscribe/history"))
            .header("x-api-key", KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 200);
    }
}

#[tokio::test]
async fn control_characters_from_requests_never_reach_the_log_raw() {
    let server = spawn(&[]);
    // CR LF then a fake log line, and an ESC sequence, in a path segment.
    let forged = "/v1/senders/a%0d%0a1999-01-01T00:00:00.000000Z%20%20INFO%20FORGED%20line%1b%5b2J%40example.com/decision";
    let response = server
        .client
        .put(server.url(forged))
        .header("x-api-key", KEY)
        .json(&json!({"decision": "keep"}))
        .send()
        .await
        .unwrap();
    // Not an address: a 400 problem (core's parse refuses control characters), nothing stored.
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 400, "{problem}");
    // The same in JSON bodies (JSON strings may hold any control character).
    for body in [
        json!({"sender": "b\r\nFORGED body\u{1b}[31m@example.com", "dry_run": true}),
        json!({"candidate_id": "c\r\nFORGED id\u{1b}]0;title\u{7}"}),
    ] {
        server
            .client
            .post(server.url("/v1/unsubscribe"))
            .header("x-api-key", KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
    }
    // A token whose subject carries them too (it is logged as the actor).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"sub": "d\r\nFORGED actor\u{1b}[2J", "tenant": "acme", "aud": "quietbox",
        "scope": "unsubscribe:execute", "exp": now + 600});
    let sneaky = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(crate::harness::SECRET.as_bytes()),
    )
    .unwrap();
    server
        .client
        .put(server.url("/v1/senders/offers@travel.example.net/decision"))
        .bearer_auth(sneaky)
        .json(&json!({"decision": "keep"}))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = server.logs();
    assert!(logs.contains("request"), "no request line logged: {logs}");
    assert!(!logs.contains('\r'), "raw CR in the log: {logs:?}");
    assert!(!logs.contains('\u{1b}'), "raw ESC in the log: {logs:?}");
    assert!(!logs.contains('\u{7}'), "raw BEL in the log: {logs:?}");
    for line in logs.lines() {
        assert!(
            !line.trim_start().starts_with("FORGED") && !line.starts_with("1999-01-01"),
            "a forged log line: {line:?}"
        );
    }
}
