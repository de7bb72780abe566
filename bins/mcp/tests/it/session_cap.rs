//! `MCP_MAX_SESSIONS`: a client looping on `initialize` cannot grow the server without bound.
//! New sessions past the cap get a 503 problem with `Retry-After`; open sessions keep working,
//! and closing one (DELETE) makes room again.

use serde_json::json;

use super::{Session, key, spawn};

#[tokio::test]
async fn sessions_past_the_cap_are_refused_until_one_closes() {
    let server = spawn(&[("MCP_MAX_SESSIONS", "3")]);
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(Session::open(&server, key()).await);
    }

    let refused = reqwest::Client::new()
        .post(server.url("/mcp"))
        .header("x-api-key", key().1)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "fourth", "version": "1"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("MCP_MAX_SESSIONS"),
        "{body}"
    );

    // Sessions already open are not affected by the cap.
    assert!(!open[0].tools().await.is_empty());

    // Closing one makes room for a new one.
    let first = open.remove(0);
    let closed = reqwest::Client::new()
        .delete(server.url("/mcp"))
        .header("x-api-key", key().1)
        .header("mcp-session-id", first.id.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert!(closed.status().is_success(), "{}", closed.status());
    let mut again = None;
    // The session worker ends asynchronously after the DELETE: poll, with a generous cap.
    for _ in 0..100 {
        let (status, _) = Session::try_open(&server, key()).await;
        if status == 200 {
            again = Some(status);
            break;
        }
        assert_eq!(status, 503);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(again, Some(200), "a closed session frees its slot");
}
