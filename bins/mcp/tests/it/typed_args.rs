//! Tool arguments are the operations' typed structs (issue 19): the published `inputSchema` is
//! generated from the struct that is enforced, a violation is an `isError` result naming the
//! argument (with its code in `structuredContent`), and a `tools/call` whose params are not a
//! tools/call is -32602, not -32601.

use quietbox_runtime::operations::{
    AvailabilityArgs, CandidatesArgs, ComplianceArgs, DigestArgs, HistoryArgs, ScanArgs,
    SenderDecisionArgs, UnsubscribeArgs,
};
use serde_json::{Value, json};

use super::{Session, key, spawn};

#[tokio::test]
async fn every_input_schema_is_the_schemars_schema_of_its_argument_struct() {
    let server = spawn(&[]);
    let mut session = Session::open(&server, key()).await;
    let list = session.request("tools/list", json!({})).await;
    let tools = list["result"]["tools"].as_array().unwrap();
    let expected = [
        ("get_availability", schemars::schema_for!(AvailabilityArgs)),
        ("scan_inbox", schemars::schema_for!(ScanArgs)),
        (
            "list_unsubscribe_candidates",
            schemars::schema_for!(CandidatesArgs),
        ),
        ("unsubscribe_history", schemars::schema_for!(HistoryArgs)),
        ("unsubscribe", schemars::schema_for!(UnsubscribeArgs)),
        ("send_unsubscribe_digest", schemars::schema_for!(DigestArgs)),
        (
            "unsubscribe_compliance",
            schemars::schema_for!(ComplianceArgs),
        ),
        (
            "set_sender_decision",
            schemars::schema_for!(SenderDecisionArgs),
        ),
    ];
    assert_eq!(tools.len(), expected.len());
    for (name, schema) in expected {
        let tool = tools.iter().find(|t| t["name"] == name).unwrap();
        assert_eq!(
            tool["inputSchema"],
            serde_json::to_value(schema).unwrap(),
            "{name}"
        );
        assert_eq!(tool["inputSchema"]["additionalProperties"], false, "{name}");
    }
    let scan = tools.iter().find(|t| t["name"] == "scan_inbox").unwrap();
    assert_eq!(scan["inputSchema"]["properties"]["limit"]["maximum"], 1000);
    assert!(scan["inputSchema"]["properties"]["since"].is_object());
}

#[tokio::test]
async fn arguments_breaking_the_schema_are_an_is_error_result_naming_the_argument() {
    let server = spawn(&[]);
    let mut session = Session::open(&server, key()).await;
    for (tool, arguments, field, code) in [
        (
            "scan_inbox",
            json!({"limit": 5000}),
            "limit",
            "invalid_request",
        ),
        (
            "scan_inbox",
            json!({"limit": 0}),
            "limit",
            "invalid_request",
        ),
        (
            "scan_inbox",
            json!({"limit": "ten"}),
            "limit",
            "malformed_body",
        ),
        (
            "scan_inbox",
            json!({"since": "yesterday"}),
            "since",
            "malformed_body",
        ),
        (
            "get_availability",
            json!({"slot_minutes": 1441}),
            "slot_minutes",
            "invalid_request",
        ),
        (
            "unsubscribe_history",
            json!({"sendr": "a@b.example"}),
            "sendr",
            "malformed_body",
        ),
        (
            "list_unsubscribe_candidates",
            json!({"page": 2}),
            "page",
            "malformed_body",
        ),
        (
            "send_unsubscribe_digest",
            json!({"send": "yes"}),
            "send",
            "malformed_body",
        ),
        (
            "set_sender_decision",
            json!({"sender": "a@b.example"}),
            "decision",
            "malformed_body",
        ),
        (
            "unsubscribe",
            json!({"dry_run": true}),
            "sender",
            "invalid_request",
        ),
    ] {
        let result = session.call(tool, arguments.clone()).await;
        assert_eq!(result["isError"], true, "{tool} {arguments}: {result}");
        assert_eq!(
            result["structuredContent"]["field"], field,
            "{tool} {arguments}: {result}"
        );
        assert_eq!(
            result["structuredContent"]["code"], code,
            "{tool} {arguments}: {result}"
        );
        let text = result["content"][0]["text"].as_str().unwrap();
        assert!(text.contains(field), "{tool} {arguments}: {text}");
    }
    // The server still answers a valid call.
    let result = session.call("scan_inbox", json!({"limit": 1000})).await;
    assert_eq!(result["isError"], false, "{result}");
}

#[tokio::test]
async fn a_tools_call_with_malformed_params_is_invalid_params() {
    let server = spawn(&[]);
    let mut session = Session::open(&server, key()).await;
    for (params, field) in [
        (json!({"name": "scan_inbox", "arguments": [1]}), "arguments"),
        (
            json!({"name": "scan_inbox", "arguments": "limit=1"}),
            "arguments",
        ),
        (json!({"arguments": {}}), "name"),
        (json!({"name": 7, "arguments": {}}), "name"),
    ] {
        let answer = session.request("tools/call", params.clone()).await;
        assert_eq!(answer["error"]["code"], -32602, "{params}: {answer}");
        assert_eq!(
            answer["error"]["data"]["code"], "invalid_request",
            "{answer}"
        );
        assert_eq!(answer["error"]["data"]["field"], field, "{answer}");
    }
    // An unknown tool is invalid params too, with the code REST gives an unknown route target.
    let answer = session
        .request("tools/call", json!({"name": "teleport", "arguments": {}}))
        .await;
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    assert_eq!(answer["error"]["data"]["code"], "not_found", "{answer}");
    // A method that does not exist is still -32601.
    let answer: Value = session.request("tools/teleport", json!({})).await;
    assert_eq!(answer["error"]["code"], -32601, "{answer}");
}

#[tokio::test]
async fn the_digest_tool_previews_unless_send_is_true() {
    let server = spawn(&[]);
    let mut session = Session::open(&server, key()).await;
    let result = session.call("send_unsubscribe_digest", json!({})).await;
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(result["structuredContent"]["sent"], false, "{result}");
}

#[tokio::test]
async fn a_failed_tool_carries_the_core_code_in_structured_content() {
    let server = spawn(&[]);
    let mut session = Session::open(&server, key()).await;
    let result = session
        .call("unsubscribe", json!({"sender": "nobody@nowhere.example"}))
        .await;
    assert_eq!(result["isError"], true, "{result}");
    assert_eq!(result["structuredContent"]["code"], "not_found", "{result}");
}
