//! Input that once panicked or bought unbounded work (issue 18, items 10 to 12): each is a
//! 400 problem+json naming the bound, and the server keeps serving.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{KEY, spawn};

#[tokio::test]
async fn out_of_range_availability_arguments_are_400_not_500() {
    let server = spawn(&[]);
    for (query, needle) in [
        (
            "slot_minutes=9223372036854775807",
            "slot_minutes must be between 5 and 1440",
        ),
        (
            "slot_minutes=-9223372036854775808",
            "slot_minutes must be between 5 and 1440",
        ),
        ("slot_minutes=0", "slot_minutes must be between 5 and 1440"),
        (
            "start=%2B262142-12-31T00:00:00Z",
            "more than 5 years from now",
        ),
        ("start=9999-12-31T00:00:00Z", "more than 5 years from now"),
        (
            "start=2026-12-01T00:00:00Z&end=%2B262142-12-31T00:00:00Z",
            "more than 5 years from now",
        ),
    ] {
        let started = Instant::now();
        let response = server
            .client
            .get(server.url(&format!("/v1/availability?{query}")))
            .header("x-api-key", KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{query}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "invalid_request", "{query}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap_or("").contains(needle),
            "{query}: {problem}"
        );
        assert!(started.elapsed() < Duration::from_secs(2), "{query}");
    }
    let health = server
        .client
        .get(server.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn a_decision_for_something_that_is_not_an_address_is_400() {
    let server = spawn(&[]);
    for path in [
        "/v1/senders/a%0d%0aFORGED%40example.com/decision",
        "/v1/senders/deals%40shop.example.com%1b%5b2J/decision",
        "/v1/senders/not-an-address/decision",
    ] {
        let response = server
            .client
            .put(server.url(path))
            .header("x-api-key", KEY)
            .json(&json!({"decision": "keep"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "invalid_request", "{path}: {problem}");
    }
}

#[tokio::test]
async fn an_unknown_query_parameter_is_refused_naming_it() {
    let server = spawn(&[]);
    for (path, name) in [
        ("/v1/unsubscribe/history?sendr=a%40b.example", "sendr"),
        (
            "/v1/unsubscribe/compliance?senders=a%40b.example",
            "senders",
        ),
        ("/v1/availability?slot=60", "slot"),
    ] {
        let response = server
            .client
            .get(server.url(path))
            .header("x-api-key", KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "invalid_request", "{path}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap_or("").contains(name),
            "{path}: {problem}"
        );
    }
}
