//! Message text (issue 21 item 4): the one-line summary of an unsubscribe (A2A's artifact text)
//! names its result in words ("would unsubscribe", not "wouldunsubscribe"), and an enum
//! argument's error quotes the value given, not Rust's `Some("…")`.

use quietbox_core::service::{UnsubscribeOutcome, UnsubscribeResult};
use quietbox_core::store::UnsubscribeMethod;
use quietbox_runtime::operations::Output;
use serde_json::json;

use super::{Session, key, spawn};

#[test]
fn an_unsubscribe_summary_names_its_result_in_words() {
    for result in [
        UnsubscribeResult::Unsubscribed,
        UnsubscribeResult::ManualLinkRecorded,
        UnsubscribeResult::WouldUnsubscribe,
        UnsubscribeResult::AlreadyDone,
        UnsubscribeResult::Failed,
    ] {
        let outcome = UnsubscribeOutcome {
            sender: "deals@shop.example.com".into(),
            list_id: None,
            candidate_id: "c1".into(),
            method: UnsubscribeMethod::OneClick,
            link: "https://shop.example.com/u".into(),
            result,
            detail: None,
        };
        // The wire name (`would_unsubscribe`) with spaces: independent of the summary's code.
        let words = serde_json::to_value(result)
            .unwrap()
            .as_str()
            .unwrap()
            .replace('_', " ");
        assert_eq!(
            Output::from(outcome).summary(),
            format!("deals@shop.example.com: {words} via one_click")
        );
    }
}

#[tokio::test]
async fn an_enum_argument_error_quotes_the_value_without_rust_debug_formatting() {
    let server = spawn(&[]);
    let mut session = Session::open(&server, key()).await;
    let answer = session
        .request(
            "tools/call",
            json!({"name": "set_sender_decision", "arguments": {"sender": "a@b.example", "decision": "bogus"}}),
        )
        .await;
    let message = answer["result"]["structuredContent"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(message.contains("bogus"), "{message}");
    assert!(!message.contains("Some("), "{message}");
}
