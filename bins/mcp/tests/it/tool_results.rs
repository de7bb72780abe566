//! Tool results (issue 21 item 1): every tool declares a `title` and an `outputSchema`, its
//! `structuredContent` validates against that schema (checked with the independent `jsonschema`
//! crate), a failed call's too, and the text content is the serialized result, not a summary.

use serde_json::{Value, json};

use super::{Session, key, spawn};

#[tokio::test]
async fn every_tool_result_matches_its_output_schema_and_its_text_is_the_result() {
    let server = spawn(&[]);
    let mut session = Session::open(&server, key()).await;
    let list = session.request("tools/list", json!({})).await;
    let tools = list["result"]["tools"].as_array().unwrap().clone();
    let candidates = session
        .request(
            "tools/call",
            json!({"name": "list_unsubscribe_candidates", "arguments": {}}),
        )
        .await;
    let sender = candidates["result"]["structuredContent"]["candidates"][0]["sender"]["address"]
        .as_str()
        .expect("the sample has candidates")
        .to_owned();
    let calls = [
        ("get_availability", json!({})),
        ("scan_inbox", json!({})),
        ("list_unsubscribe_candidates", json!({})),
        ("unsubscribe_history", json!({})),
        ("unsubscribe", json!({"sender": sender, "dry_run": true})),
        ("send_unsubscribe_digest", json!({})),
        ("unsubscribe_compliance", json!({})),
        (
            "set_sender_decision",
            json!({"sender": sender, "decision": "keep"}),
        ),
    ];
    assert_eq!(tools.len(), calls.len(), "one call per listed tool");
    for (name, arguments) in calls {
        let tool = tools.iter().find(|t| t["name"] == name).unwrap();
        assert!(
            tool["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{name} has a title: {tool}"
        );
        let schema = &tool["outputSchema"];
        assert_eq!(schema["type"], "object", "{name} declares an outputSchema");
        let validator = jsonschema::validator_for(schema)
            .unwrap_or_else(|e| panic!("{name}: the outputSchema is a JSON Schema: {e}"));
        let answer = session
            .request("tools/call", json!({"name": name, "arguments": arguments}))
            .await;
        let result = &answer["result"];
        assert_ne!(result["isError"], true, "{name}: {answer}");
        let structured = &result["structuredContent"];
        let errors: Vec<String> = validator
            .iter_errors(structured)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        let text = result["content"][0]["text"].as_str().unwrap();
        let parsed: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{name}: the text is the serialized result: {e}: {text}"));
        assert_eq!(&parsed, structured, "{name}");
    }
    // A failed call's structuredContent (its code) matches the schema too: clients validate it.
    let tool = tools
        .iter()
        .find(|t| t["name"] == "set_sender_decision")
        .unwrap();
    let validator = jsonschema::validator_for(&tool["outputSchema"]).unwrap();
    let answer = session
        .request(
            "tools/call",
            json!({"name": "set_sender_decision", "arguments": {"sender": sender, "decision": "bogus"}}),
        )
        .await;
    let result = &answer["result"];
    assert_eq!(result["isError"], true, "{answer}");
    assert_eq!(
        result["structuredContent"]["code"], "invalid_request",
        "{answer}"
    );
    assert!(validator.is_valid(&result["structuredContent"]), "{answer}");
}
