//! A token endpoint that cannot be reached gives an error naming the cause (issue 11): oauth2's
//! own message was only "Request failed", reqwest's only "error sending request".

use quietbox_core::ports::ProviderError;
use quietbox_gmail::google::TokenManager;

#[tokio::test]
async fn an_unreachable_token_endpoint_is_named_with_its_cause() {
    // A port nothing listens on: bind, note it, close.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.json");
    let body = format!(
        r#"{{"refresh_token": "r", "client_id": "c", "token_uri": "http://{addr}/token"}}"#
    );
    std::fs::write(&path, body).unwrap();
    let manager = TokenManager::load(&path, reqwest::Client::new()).unwrap();
    match manager.access_token().await {
        Err(ProviderError::Unavailable(message)) => {
            assert!(
                message.contains("token endpoint is unreachable")
                    && message.contains(&addr.to_string())
                    && message.to_lowercase().contains("connect"),
                "{message}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
