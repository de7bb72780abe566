//! A2A 1.0 and JSON-RPC 2.0 details that the official clients check (issue 21, items 5, 7–10):
//! notifications, request ids, message validation, what is stored, versions, push
//! notifications, history and artifacts, ListTasks filters, the card's URL and challenge.

use serde_json::{Value, json};

use super::{KEY, call, key, spawn};

fn rpc(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn message(extra: Value) -> Value {
    let mut m = json!({"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": "candidates"}]});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            m.as_object_mut().unwrap().remove(k);
        } else {
            m[k] = v.clone();
        }
    }
    m
}

#[tokio::test]
async fn a_notification_is_not_answered_and_an_object_id_is_an_invalid_request() {
    let server = spawn(&[]);
    let client = reqwest::Client::new();
    let response = client
        .post(server.url("/"))
        .header("x-api-key", KEY)
        .json(&json!({"jsonrpc": "2.0", "method": "GetTask", "params": {"id": "nope"}}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(
        response.text().await.unwrap(),
        "",
        "a notification gets no body"
    );
    // In a batch a notification has no entry.
    let (_, batch) = call(
        &server,
        key(),
        json!([
            {"jsonrpc": "2.0", "method": "GetTask", "params": {"id": "x"}},
            {"jsonrpc": "2.0", "id": 7, "method": "GetTask", "params": {"id": "x"}}
        ]),
    )
    .await;
    let batch = batch.as_array().unwrap();
    assert_eq!(batch.len(), 1, "{batch:?}");
    assert_eq!(batch[0]["id"], 7);
    let (_, object_id) = call(
        &server,
        key(),
        json!({"jsonrpc": "2.0", "id": {"x": 1}, "method": "GetTask", "params": {"id": "x"}}),
    )
    .await;
    assert_eq!(object_id["error"]["code"], -32600, "{object_id}");
    assert_eq!(object_id["id"], Value::Null);
}

#[tokio::test]
async fn a_message_needs_a_message_id_and_a_known_role_and_unknown_fields_are_dropped() {
    let server = spawn(&[]);
    for (bad, field) in [
        (json!({"messageId": null}), "message.messageId"),
        (json!({"messageId": ""}), "message.messageId"),
        (json!({"role": "ROLE_BOGUS"}), "message.role"),
        (json!({"role": "user"}), "message.role"),
        (
            json!({"parts": [{"text": "a", "data": {}}]}),
            "message.parts[0]",
        ),
    ] {
        let (_, answer) = call(
            &server,
            key(),
            rpc(1, "SendMessage", json!({"message": message(bad.clone())})),
        )
        .await;
        assert_eq!(answer["error"]["code"], -32602, "{bad}: {answer}");
        assert_eq!(answer["error"]["data"]["field"], field, "{bad}: {answer}");
    }
    let (_, sent) = call(
        &server,
        key(),
        rpc(
            2,
            "SendMessage",
            json!({"message": message(json!({"bogusField": "x",
                "parts": [{"text": "candidates", "bogusPartField": 1}]}))}),
        ),
    )
    .await;
    let id = sent["result"]["task"]["id"]
        .as_str()
        .expect("a task")
        .to_owned();
    let (_, got) = call(&server, key(), rpc(3, "GetTask", json!({"id": id}))).await;
    let text = got.to_string();
    assert!(!text.contains("bogus"), "unknown fields stored: {text}");
    assert_eq!(
        got["result"]["history"][0]["parts"][0]["text"],
        "candidates"
    );
    assert_eq!(got["result"]["history"][0]["messageId"], "m-1");
}

#[tokio::test]
async fn a2a_version_patch_releases_are_accepted_and_other_versions_refused() {
    let server = spawn(&[]);
    let client = reqwest::Client::new();
    for (version, code) in [
        ("1.0.1", None),
        ("1.0.17", None),
        ("1.0", None),
        ("1.1", Some(-32009)),
        ("1.0.x", Some(-32009)),
        ("2.0.1", Some(-32009)),
    ] {
        let answer: Value = client
            .post(server.url("/"))
            .header("x-api-key", KEY)
            .header("a2a-version", version)
            .json(&rpc(1, "ListTasks", json!({"pageSize": 1})))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            answer["error"]["code"].as_i64(),
            code,
            "{version}: {answer}"
        );
    }
}

#[tokio::test]
async fn push_notification_config_methods_answer_push_notification_not_supported() {
    let server = spawn(&[]);
    let card: Value = reqwest::get(server.url("/.well-known/agent-card.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(card["capabilities"]["pushNotifications"], false);
    for method in [
        "CreateTaskPushNotificationConfig",
        "GetTaskPushNotificationConfig",
        "ListTaskPushNotificationConfigs",
        "DeleteTaskPushNotificationConfig",
    ] {
        let (_, answer) = call(
            &server,
            key(),
            rpc(
                1,
                method,
                json!({"taskId": "t", "url": "http://127.0.0.1:9/hook"}),
            ),
        )
        .await;
        assert_eq!(answer["error"]["code"], -32003, "{method}: {answer}");
    }
}

#[tokio::test]
async fn get_and_list_tasks_honour_history_length_and_include_artifacts() {
    let server = spawn(&[]);
    let (_, sent) = call(
        &server,
        key(),
        rpc(1, "SendMessage", json!({"message": message(json!({}))})),
    )
    .await;
    let id = sent["result"]["task"]["id"].as_str().unwrap().to_owned();
    let (_, full) = call(&server, key(), rpc(2, "GetTask", json!({"id": id}))).await;
    assert_eq!(full["result"]["history"].as_array().unwrap().len(), 1);
    let (_, none) = call(
        &server,
        key(),
        rpc(3, "GetTask", json!({"id": id, "historyLength": 0})),
    )
    .await;
    assert_eq!(none["result"]["history"], json!([]), "{none}");
    assert!(!none["result"]["artifacts"].as_array().unwrap().is_empty());
    let (_, negative) = call(
        &server,
        key(),
        rpc(4, "GetTask", json!({"id": id, "historyLength": -1})),
    )
    .await;
    assert_eq!(negative["error"]["code"], -32602, "{negative}");
    let (_, listed) = call(&server, key(), rpc(5, "ListTasks", json!({}))).await;
    let task = &listed["result"]["tasks"][0];
    assert!(task.get("artifacts").is_none(), "{task}");
    assert_eq!(task["history"].as_array().unwrap().len(), 1);
    let (_, with) = call(
        &server,
        key(),
        rpc(
            6,
            "ListTasks",
            json!({"includeArtifacts": true, "historyLength": 0}),
        ),
    )
    .await;
    let task = &with["result"]["tasks"][0];
    assert!(!task["artifacts"].as_array().unwrap().is_empty(), "{task}");
    assert_eq!(task["history"], json!([]));
}

#[tokio::test]
async fn list_tasks_validates_its_filters_and_applies_status_timestamp_after() {
    let server = spawn(&[]);
    for i in 0..2 {
        let (_, sent) = call(
            &server,
            key(),
            rpc(i, "SendMessage", json!({"message": message(json!({}))})),
        )
        .await;
        assert!(sent["result"]["task"]["id"].is_string(), "{sent}");
    }
    for (params, field) in [
        (json!({"pageSize": 0}), "pageSize"),
        (json!({"pageSize": 101}), "pageSize"),
        (json!({"pageSize": "ten"}), "pageSize"),
        (json!({"historyLength": -1}), "historyLength"),
        (json!({"status": "TASK_STATE_BOGUS"}), "status"),
        (json!({"status": 42}), "status"),
        (
            json!({"statusTimestampAfter": "yesterday"}),
            "statusTimestampAfter",
        ),
        (json!({"includeArtifacts": "yes"}), "includeArtifacts"),
    ] {
        let (_, answer) = call(&server, key(), rpc(9, "ListTasks", params.clone())).await;
        assert_eq!(answer["error"]["code"], -32602, "{params}: {answer}");
        assert_eq!(
            answer["error"]["data"]["field"], field,
            "{params}: {answer}"
        );
    }
    for (params, count) in [
        (json!({"pageSize": 100}), 2),
        (json!({"status": "TASK_STATE_COMPLETED"}), 2),
        (json!({"status": 3}), 2),
        (json!({"status": "TASK_STATE_WORKING"}), 0),
        (json!({"statusTimestampAfter": "2000-01-01T00:00:00Z"}), 2),
        (json!({"statusTimestampAfter": "2099-01-01T00:00:00Z"}), 0),
    ] {
        let (_, answer) = call(&server, key(), rpc(9, "ListTasks", params.clone())).await;
        let result = &answer["result"];
        assert_eq!(
            result["tasks"].as_array().map(Vec::len),
            Some(count),
            "{params}: {answer}"
        );
        assert_eq!(result["totalSize"], count, "{params}: {answer}");
    }
}

#[tokio::test]
async fn the_card_url_is_configured_or_bound_never_the_host_header_and_401_uses_a_declared_scheme()
{
    let server = spawn(&[("AUTH_MODE", "api_key")]);
    let client = reqwest::Client::new();
    let card: Value = client
        .get(server.url("/.well-known/agent-card.json"))
        .header("host", "evil.example:666")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        card["supportedInterfaces"][0]["url"],
        format!("{}/", server.base),
        "the bound address, not the Host header"
    );
    let refused = client
        .post(server.url("/"))
        .json(&rpc(1, "ListTasks", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with("ApiKey "), "{challenge}");
    assert!(card["securitySchemes"]["api_key"]["apiKeySecurityScheme"].is_object());
    let proxied = spawn(&[("A2A_PUBLIC_URL", "https://agent.example.com/a2a/")]);
    let card: Value = reqwest::get(proxied.url("/.well-known/agent-card.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        card["supportedInterfaces"][0]["url"],
        "https://agent.example.com/a2a/"
    );
    let extended = call(&proxied, key(), rpc(2, "GetExtendedAgentCard", json!({})))
        .await
        .1;
    assert_eq!(
        extended["result"]["supportedInterfaces"][0]["url"],
        "https://agent.example.com/a2a/"
    );
}
