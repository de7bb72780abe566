//! The same server through rmcp's own client, over both transports.

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use serde_json::json;

use super::{BIN, KEY, spawn};

fn args(value: serde_json::Value) -> rmcp::model::JsonObject {
    value.as_object().cloned().unwrap_or_default()
}

#[tokio::test]
async fn the_rmcp_client_lists_and_calls_tools_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let env = quietbox_testkit::binary::with(
        quietbox_testkit::binary::base_env(dir.path()),
        &[
            ("AUTH_MODE", "api_key"),
            ("AGENT_API_KEY", KEY),
            ("RUST_LOG", "warn"),
        ],
    );
    let command = tokio::process::Command::new(BIN).configure(|cmd| {
        cmd.arg("--transport")
            .arg("stdio")
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)));
    });
    let client = ().serve(TokioChildProcess::new(command).unwrap()).await.unwrap();
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 8);
    let unsubscribe = tools.iter().find(|t| t.name == "unsubscribe").unwrap();
    assert_eq!(
        unsubscribe
            .annotations
            .as_ref()
            .and_then(|a| a.read_only_hint),
        Some(false)
    );
    let compliance = tools
        .iter()
        .find(|t| t.name == "unsubscribe_compliance")
        .unwrap();
    assert_eq!(
        compliance
            .annotations
            .as_ref()
            .and_then(|a| a.read_only_hint),
        Some(true)
    );
    let decision = tools
        .iter()
        .find(|t| t.name == "set_sender_decision")
        .unwrap();
    assert_eq!(
        decision.annotations.as_ref().and_then(|a| a.read_only_hint),
        Some(false)
    );
    let scan = tools.iter().find(|t| t.name == "scan_inbox").unwrap();
    assert_eq!(
        scan.annotations.as_ref().and_then(|a| a.read_only_hint),
        Some(true)
    );
    let result = client
        .call_tool(
            CallToolRequestParams::new("unsubscribe").with_arguments(args(
                json!({"sender": "lug@lists.example.org", "dry_run": true}),
            )),
        )
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(false));
    assert_eq!(
        result.structured_content.unwrap()["result"],
        "would_unsubscribe"
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rmcp_client_calls_tools_over_streamable_http_with_a_key() {
    let server = spawn(&[("AUTH_MODE", "api_key")]);
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.url("/mcp")).auth_header(KEY),
    );
    let client = ().serve(transport).await.unwrap();
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 8);
    let result = client
        .call_tool(CallToolRequestParams::new("list_unsubscribe_candidates"))
        .await
        .unwrap();
    assert_eq!(
        result.structured_content.unwrap()["candidates"][0]["sender"]["address"],
        "deals@shop.example.com"
    );
    client.cancel().await.unwrap();
}
