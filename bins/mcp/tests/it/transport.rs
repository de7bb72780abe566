//! Transport details (issue 21 item 2, HTTP part): DELETE of a live session is 204, of an ended
//! or unknown one 404; a body that is not JSON is HTTP 400 with a JSON-RPC parse error.

use serde_json::Value;

use super::{KEY, Session, key, spawn};

#[tokio::test]
async fn delete_of_a_live_session_is_204_and_of_an_ended_or_unknown_one_404() {
    let server = spawn(&[]);
    let session = Session::open(&server, key()).await;
    let id = session.id.clone().unwrap();
    let client = reqwest::Client::new();
    let delete = |id: String| {
        client
            .delete(server.url("/mcp"))
            .header("X-API-Key", KEY)
            .header("mcp-session-id", id)
            .send()
    };
    assert_eq!(delete(id.clone()).await.unwrap().status(), 204);
    assert_eq!(delete(id).await.unwrap().status(), 404);
    assert_eq!(
        delete("no-such-session".into()).await.unwrap().status(),
        404
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_is_400_with_a_parse_error() {
    let server = spawn(&[]);
    let answer = reqwest::Client::new()
        .post(server.url("/mcp"))
        .header("X-API-Key", KEY)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body("{bad json")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32700, "{body}");
    assert_eq!(body["id"], Value::Null, "{body}");
}
