//! The three protocols give the same answer to the same question: a failure carries the code
//! REST's problem+json `code` gives (A2A in JSON-RPC `error.data.code` or in the failed task's
//! status message, MCP in `error.data.code` or an `isError` result's `structuredContent`), bad
//! arguments name the argument, and defaults (`send`, `since`) are the same everywhere.

use quietbox_runtime::operations::Operation;
use serde_json::{Value, json};

use crate::surfaces::{self, Auth, Surface};

struct Three {
    rest: Surface,
    a2a: Surface,
    mcp: Surface,
    session: String,
}

async fn three() -> Three {
    let rest = surfaces::rest(&[]).await;
    let a2a = surfaces::a2a(&[]).await;
    let mcp = surfaces::mcp(&[]).await;
    let session = mcp.mcp_open(&Auth::Key).await;
    Three {
        rest,
        a2a,
        mcp,
        session,
    }
}

/// The code and argument an A2A answer names: a JSON-RPC error's `data`, or the failed task's
/// status message data part.
fn a2a_failure(answer: &Value) -> (Value, Value) {
    if let Some(error) = answer.get("error") {
        return (
            error["data"]["code"].clone(),
            error["data"]["field"].clone(),
        );
    }
    let status = &answer["result"]["task"]["status"];
    assert_eq!(status["state"], "TASK_STATE_FAILED", "{answer}");
    let data = status["message"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|p| p.get("data"))
        .cloned()
        .unwrap_or(Value::Null);
    (data["code"].clone(), Value::Null)
}

/// The code and argument an MCP answer names: a JSON-RPC error's `data`, or the `isError`
/// result's `structuredContent`.
fn mcp_failure(answer: &Value) -> (Value, Value) {
    if let Some(error) = answer.get("error") {
        return (
            error["data"]["code"].clone(),
            error["data"]["field"].clone(),
        );
    }
    let result = &answer["result"];
    assert_eq!(result["isError"], true, "{answer}");
    (
        result["structuredContent"]["code"].clone(),
        result["structuredContent"]["field"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_has_the_code_rest_gives_on_every_protocol() {
    let t = three().await;
    let auth = Auth::Key;
    // (operation, arguments, REST status, the argument at fault when the arguments are bad)
    let cases = [
        (
            Operation::ScanInbox,
            json!({"limit": 5000}),
            400,
            Some("limit"),
        ),
        (
            Operation::ScanInbox,
            json!({"limit": 1, "surprise": true}),
            400,
            Some("surprise"),
        ),
        (
            Operation::Availability,
            json!({"slot_minutes": i64::MAX}),
            400,
            Some("slot_minutes"),
        ),
        (
            Operation::Availability,
            json!({"tz": "Mars/Olympus"}),
            400,
            Some("tz"),
        ),
        (
            Operation::Unsubscribe,
            json!({"sender": "a@b.example", "candidate_id": "x"}),
            400,
            Some("candidate_id"),
        ),
        (
            Operation::SenderDecision,
            json!({"sender": "deals@shop.example.com", "decision": "burn"}),
            400,
            Some("decision"),
        ),
        // Core's errors, past argument checks: a failed task on A2A, isError on MCP.
        (
            Operation::Unsubscribe,
            json!({"sender": "nobody@nowhere.example"}),
            404,
            None,
        ),
        (
            Operation::SenderDecision,
            json!({"sender": "not-an-address", "decision": "keep"}),
            400,
            None,
        ),
    ];
    for (op, args, status, field) in cases {
        let (rest_status, problem) = t.rest.rest_call(&auth, op, &args).await;
        assert_eq!(rest_status, status, "{} {args}: {problem}", op.id());
        let code = problem["code"].clone();
        assert!(code.is_string(), "{problem}");
        let (_, a2a) = t.a2a.a2a_call(&auth, op, &args).await;
        let (a2a_code, a2a_field) = a2a_failure(&a2a);
        assert_eq!(a2a_code, code, "a2a {} {args}: {a2a}", op.id());
        let (_, mcp) = t.mcp.mcp_call(&auth, &t.session, op, &args).await.unwrap();
        let (mcp_code, mcp_field) = mcp_failure(&mcp);
        assert_eq!(mcp_code, code, "mcp {} {args}: {mcp}", op.id());
        if let Some(field) = field {
            // Bad arguments are refused before any task exists: -32602 naming the argument.
            assert_eq!(a2a["error"]["code"], -32602, "{a2a}");
            assert_eq!(a2a_field, field, "{a2a}");
            assert!(
                a2a["error"]["message"].as_str().unwrap().contains(field),
                "{a2a}"
            );
            assert_eq!(mcp_field, field, "{mcp}");
            assert!(
                problem["detail"].as_str().unwrap().contains(field),
                "{problem}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_previews_unless_send_is_true_on_every_protocol() {
    let t = three().await;
    let (status, rest) = t
        .rest
        .rest_call(&Auth::Key, Operation::UnsubscribeDigest, &json!({}))
        .await;
    assert_eq!((status, &rest["sent"]), (200, &json!(false)), "{rest}");
    let (_, a2a) = t
        .a2a
        .a2a_call(&Auth::Key, Operation::UnsubscribeDigest, &json!({}))
        .await;
    assert_eq!(
        a2a["result"]["task"]["artifacts"][0]["parts"][0]["data"]["sent"], false,
        "{a2a}"
    );
    let (_, mcp) = t
        .mcp
        .mcp_call(
            &Auth::Key,
            &t.session,
            Operation::UnsubscribeDigest,
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(mcp["result"]["structuredContent"]["sent"], false, "{mcp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_honours_since_on_every_protocol() {
    let t = three().await;
    let args = json!({"since": "2100-01-01T00:00:00Z", "limit": 5});
    let classes = |report: &Value| {
        let c = &report["classes"];
        ["newsletter", "notification", "personal", "other"]
            .iter()
            .map(|k| c[k].as_u64().unwrap())
            .sum::<u64>()
    };
    let (status, rest) = t
        .rest
        .rest_call(&Auth::Key, Operation::ScanInbox, &args)
        .await;
    assert_eq!(status, 200, "{rest}");
    let (_, a2a) = t
        .a2a
        .a2a_call(&Auth::Key, Operation::ScanInbox, &args)
        .await;
    let a2a = &a2a["result"]["task"]["artifacts"][0]["parts"][0]["data"];
    let (_, mcp) = t
        .mcp
        .mcp_call(&Auth::Key, &t.session, Operation::ScanInbox, &args)
        .await
        .unwrap();
    let mcp = &mcp["result"]["structuredContent"];
    for (protocol, report) in [("rest", &rest), ("a2a", a2a), ("mcp", mcp)] {
        // Nothing in the sample mailbox is dated after 2100.
        assert_eq!(report["total"], 0, "{protocol}: {report}");
        assert_eq!(classes(report), 0, "{protocol}: {report}");
        assert_eq!(report["messages"], json!([]), "{protocol}");
    }
}
