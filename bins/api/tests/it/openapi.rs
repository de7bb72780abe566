//! `/openapi.json` documents every success body: each 2xx answer of each operation has a JSON
//! schema and an example that validates against it, and the live answers on the sample validate
//! against the schema of their operation (the `jsonschema` crate, an independent validator).

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{KEY, spawn};

/// A validator of `schema` whose `#/components/...` references resolve in `document`.
fn validator(document: &Value, schema: &Value) -> jsonschema::Validator {
    let root = json!({"allOf": [schema], "components": document["components"]});
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&root)
        .unwrap_or_else(|e| panic!("schema {schema} does not compile: {e}"))
}

fn errors(validator: &jsonschema::Validator, value: &Value) -> Vec<String> {
    validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// The schema of `method path`'s 200 answer.
fn ok_schema<'a>(document: &'a Value, method: &str, path: &str) -> &'a Value {
    &document["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
}

#[tokio::test]
async fn every_success_answer_has_a_schema_and_live_answers_match_it() {
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

    // Every 2xx of every operation: a JSON schema, and an example that validates against it.
    let mut successes = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                let content = &response["content"];
                if status.starts_with('2') {
                    successes += 1;
                    let media = &content["application/json"];
                    let schema = &media["schema"];
                    assert!(
                        schema.is_object(),
                        "{method} {path} {status}: no schema ({response})"
                    );
                    let example = &media["example"];
                    assert!(!example.is_null(), "{method} {path} {status}: no example");
                    let problems = errors(&validator(&document, schema), example);
                    assert!(
                        problems.is_empty(),
                        "{method} {path} {status}: the example does not match: {problems:?}"
                    );
                } else if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        content["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{method} {path} {status}: not a problem"
                    );
                }
            }
        }
    }
    assert_eq!(successes, 10, "ten operations, one 2xx each");

    // The live answers on the sample, each against its operation's schema.
    let call = |method: Method, path: String, body: Option<Value>| {
        let mut request = server
            .client
            .request(method, server.url(&path))
            .header("x-api-key", KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            assert_eq!(status, 200, "{path}: {body}");
            body
        }
    };
    let check = |method: &str, path: &str, body: &Value| {
        let problems = errors(
            &validator(&document, ok_schema(&document, method, path)),
            body,
        );
        assert!(
            problems.is_empty(),
            "{method} {path}: the answer does not match its schema: {problems:?}"
        );
    };
    let scan = call(
        Method::POST,
        "/v1/mail/scan".into(),
        Some(json!({"limit": 50})),
    )
    .await;
    check("post", "/v1/mail/scan", &scan);
    let candidates = call(Method::GET, "/v1/unsubscribe/candidates".into(), None).await;
    check("get", "/v1/unsubscribe/candidates", &candidates);
    let listed = candidates["candidates"].as_array().unwrap();
    assert!(listed.len() >= 2, "the sample has candidates");
    let first = &listed[0];
    let address = first["sender"]["address"].as_str().unwrap();
    let sender = call(Method::GET, format!("/v1/senders/{address}"), None).await;
    check("get", "/v1/senders/{address}", &sender);
    let outcome = call(
        Method::POST,
        "/v1/unsubscribe".into(),
        Some(json!({"candidate_id": first["id"], "dry_run": true})),
    )
    .await;
    check("post", "/v1/unsubscribe", &outcome);
    let other = listed[1]["sender"]["address"].as_str().unwrap();
    for decision in ["auto_archive", "keep"] {
        let recorded = call(
            Method::PUT,
            format!("/v1/senders/{other}/decision"),
            Some(json!({"decision": decision})),
        )
        .await;
        check("put", "/v1/senders/{address}/decision", &recorded);
    }
    let history = call(Method::GET, "/v1/unsubscribe/history".into(), None).await;
    check("get", "/v1/unsubscribe/history", &history);
    let compliance = call(Method::GET, "/v1/unsubscribe/compliance".into(), None).await;
    check("get", "/v1/unsubscribe/compliance", &compliance);
    let digest = call(
        Method::POST,
        "/v1/unsubscribe/digest".into(),
        Some(json!({"send": false})),
    )
    .await;
    check("post", "/v1/unsubscribe/digest", &digest);
    let availability = call(
        Method::GET,
        "/v1/availability?slot_minutes=30&tz=Europe/Paris&day_start=08:30".into(),
        None,
    )
    .await;
    check("get", "/v1/availability", &availability);
    let ready = call(Method::GET, "/ready".into(), None).await;
    check("get", "/ready", &ready);
}

/// A scan `limit` written `180.0` is the integer the document declares (JSON Schema's `integer`
/// includes it), so it is accepted, not refused as malformed.
#[tokio::test]
async fn an_integral_float_is_an_integer() {
    let server = spawn(&[]);
    let response = server
        .client
        .post(server.url("/v1/mail/scan"))
        .header("x-api-key", KEY)
        .json(&json!({"limit": 3.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["messages"].as_array().unwrap().len(), 3);
}
