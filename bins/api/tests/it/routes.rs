//! Every route × credential: the scope table holds over real HTTP.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{KEY, spawn, token};

/// (method, path, body, scope)
fn routes() -> Vec<(Method, &'static str, Option<Value>, &'static str)> {
    vec![
        (
            Method::GET,
            "/v1/availability?start=2026-11-24T23:00:00Z&end=2026-11-25T23:00:00Z&tz=Europe/Paris",
            None,
            "availability:read",
        ),
        (
            Method::POST,
            "/v1/mail/scan",
            Some(json!({"limit": 5})),
            "mail:scan",
        ),
        (
            Method::GET,
            "/v1/unsubscribe/candidates",
            None,
            "unsubscribe:read",
        ),
        (
            Method::POST,
            "/v1/unsubscribe",
            Some(json!({"sender": "deals@shop.example.com", "dry_run": true})),
            "unsubscribe:execute",
        ),
        (
            Method::GET,
            "/v1/unsubscribe/history",
            None,
            "unsubscribe:read",
        ),
        (
            Method::POST,
            "/v1/unsubscribe/digest",
            Some(json!({"send": false})),
            "unsubscribe:digest",
        ),
        (
            Method::GET,
            "/v1/unsubscribe/compliance",
            None,
            "unsubscribe:read",
        ),
        (
            Method::GET,
            "/v1/unsubscribe/compliance?sender=deals@shop.example.com",
            None,
            "unsubscribe:read",
        ),
        (
            Method::GET,
            "/v1/senders/deals@shop.example.com",
            None,
            "unsubscribe:read",
        ),
        (
            Method::PUT,
            "/v1/senders/friend@example.org/decision",
            Some(json!({"decision": "keep"})),
            "unsubscribe:execute",
        ),
        (
            Method::PUT,
            "/v1/senders/deals@shop.example.com/decision",
            Some(json!({"decision": "auto_archive"})),
            "unsubscribe:execute",
        ),
    ]
}

const SCOPES: [&str; 5] = [
    "availability:read",
    "mail:scan",
    "unsubscribe:read",
    "unsubscribe:execute",
    "unsubscribe:digest",
];

#[tokio::test]
async fn every_route_requires_its_scope_and_nothing_else() {
    let server = spawn(&[("RATE_LIMIT_BURST", "100"), ("RATE_LIMIT_PER_MIN", "1000")]);
    let mut checked = 0;
    for (method, path, body, scope) in routes() {
        // No credential: 401 with a challenge.
        let mut request = server.client.request(method.clone(), server.url(path));
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{method} {path} without credential");
        assert!(response.headers().contains_key("www-authenticate"));
        // Each single-scope token: only the route's scope passes.
        for granted in SCOPES {
            let mut request = server
                .client
                .request(method.clone(), server.url(path))
                .bearer_auth(token(granted));
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            if granted == scope {
                assert_eq!(
                    status,
                    200,
                    "{method} {path} with {granted}: {}",
                    response.text().await.unwrap()
                );
            } else {
                assert_eq!(status, 403, "{method} {path} with {granted}");
                let problem: Value = response.json().await.unwrap();
                assert_eq!(problem["scope"], scope, "the 403 names the missing scope");
            }
            checked += 1;
        }
        // The API key grants everything.
        let mut request = server
            .client
            .request(method.clone(), server.url(path))
            .header("x-api-key", KEY);
        if let Some(body) = &body {
            request = request.json(body);
        }
        assert_eq!(
            request.send().await.unwrap().status(),
            200,
            "{method} {path} with the API key"
        );
    }
    assert_eq!(checked, routes().len() * 5);
    assert_eq!(routes().len(), 11);
}

#[tokio::test]
async fn bad_credentials_are_401_problems() {
    let server = spawn(&[]);
    for (name, value) in [
        ("x-api-key", "wrong".to_owned()),
        ("authorization", "Bearer not.a.jwt".to_owned()),
        ("authorization", "Basic Zm9vOmJhcg==".to_owned()),
    ] {
        let response = server
            .client
            .get(server.url("/v1/unsubscribe/candidates"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
}

#[tokio::test]
async fn malformed_bodies_and_bad_input_get_clear_400s() {
    let server = spawn(&[]);
    let post = |path: &str, body: &'static str| {
        server
            .client
            .post(server.url(path))
            .header("x-api-key", KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let response = post("/v1/mail/scan", "{\"limit\": ").await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "malformed_body"
    );
    let response = post(
        "/v1/unsubscribe",
        "{\"sender\": \"a@b.example\", \"candidate_id\": \"x\"}",
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 400);
    let response = post("/v1/mail/scan", "{\"unknown_field\": 1}")
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        400,
        "unknown fields are refused, not ignored"
    );
    let response = server
        .client
        .get(server.url("/v1/availability?tz=Mars/Olympus"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("Mars/Olympus"));
    let response = server
        .client
        .get(server.url("/v1/senders/nobody@nowhere.example"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let big = format!("{{\"query\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let response = server
        .client
        .post(server.url("/v1/mail/scan"))
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "payload_too_large"
    );
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let server = spawn(&[]);
    let document: Value = server
        .client
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/availability",
        "/v1/mail/scan",
        "/v1/unsubscribe/candidates",
        "/v1/unsubscribe",
        "/v1/unsubscribe/history",
        "/v1/unsubscribe/digest",
        "/v1/unsubscribe/compliance",
        "/v1/senders/{address}",
        "/v1/senders/{address}/decision",
    ] {
        assert!(
            document["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
}
