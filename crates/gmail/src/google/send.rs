//! `messages.send`, at most once. A send is never repeated blindly once its request may have
//! reached Google: after an ambiguous failure (a 5xx, a timeout, a connection closed after the
//! request was written) the message is looked up in the sent mail by its `Message-ID`
//! (`messages.list` with `labelIds=SENT` and `q=rfc822msgid:<id>`), and sent again only when it
//! is not there. Failures that prove Google did not process the request (no connection, a 401,
//! a rate-limit refusal) are retried by [`GoogleApi::call_at_most_once`] itself.
//!
//! Every message sent carries a `Message-ID` quietbox generated (one is added when the raw
//! message has none; lettre's builder adds none by itself), so the lookup can find it.

use base64::Engine;
use quietbox_core::ports::{ProviderError, SentMail};
use rand::Rng;
use reqwest::Method;
use serde_json::json;

use super::api::{CallError, GoogleApi};

/// Sends of one message at most (the first included); each after the first only once the
/// lookup has shown the previous one did not arrive.
const SEND_ATTEMPTS: u32 = 3;

/// Sends `raw` from `account`'s mailbox at most once (see the module documentation).
pub(crate) async fn send_at_most_once(
    api: &GoogleApi,
    account: &str,
    raw: &[u8],
) -> Result<SentMail, ProviderError> {
    let (raw, message_id) = with_message_id(raw, account);
    let body = json!({"raw": base64::engine::general_purpose::URL_SAFE.encode(&raw)});
    let mut last = String::new();
    for attempt in 1..=SEND_ATTEMPTS {
        match api
            .call_at_most_once(
                "messages.send",
                Method::POST,
                "/gmail/v1/users/me/messages/send",
                &[],
                Some(&body),
            )
            .await
        {
            Ok(sent) => {
                return Ok(SentMail {
                    id: sent["id"].as_str().unwrap_or_default().to_owned(),
                });
            }
            Err(CallError::Ambiguous(reason)) => {
                tracing::warn!(%reason, message_id = %message_id, "messages.send may or may not have been processed; looking it up in the sent mail");
                // Also gives Google's index a moment to show a message it did take.
                tokio::time::sleep(api.backoff(attempt)).await;
                if let Some(id) = find_sent(api, &message_id).await.map_err(|e| {
                    ProviderError::Unavailable(format!(
                        "messages.send failed ambiguously ({reason}) and the sent mail could not be \
                         searched ({e}); not sent again: check Sent for Message-ID <{message_id}>"
                    ))
                })? {
                    tracing::info!(message_id = %message_id, id = %id, "the send had arrived; not sending again");
                    return Ok(SentMail { id });
                }
                last = reason;
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(ProviderError::Unavailable(format!(
        "messages.send: no answer after {SEND_ATTEMPTS} attempts ({last}), and no message with \
         Message-ID <{message_id}> is in the sent mail"
    )))
}

/// The Gmail id of the sent message whose `Message-ID` is `message_id` (without brackets).
async fn find_sent(api: &GoogleApi, message_id: &str) -> Result<Option<String>, ProviderError> {
    let query = [
        ("labelIds", "SENT".to_owned()),
        ("q", format!("rfc822msgid:{message_id}")),
        ("maxResults", "1".to_owned()),
    ];
    let found = api
        .call(
            "messages.list",
            Method::GET,
            "/gmail/v1/users/me/messages",
            &query,
            None,
        )
        .await?;
    Ok(found["messages"]
        .as_array()
        .and_then(|messages| messages.first())
        .and_then(|m| m["id"].as_str())
        .map(str::to_owned))
}

/// `raw` with a `Message-ID` (the one it has, or a new one before its other headers), and that
/// id without angle brackets.
fn with_message_id(raw: &[u8], account: &str) -> (Vec<u8>, String) {
    let existing = mail_parser::MessageParser::default()
        .parse_headers(raw)
        .and_then(|m| m.message_id().map(str::to_owned))
        .filter(|id| !id.trim().is_empty());
    if let Some(id) = existing {
        return (raw.to_vec(), id);
    }
    let id = new_message_id(account);
    let mut with = format!("Message-ID: <{id}>\r\n").into_bytes();
    with.extend_from_slice(raw);
    (with, id)
}

/// A fresh `Message-ID` (RFC 5322 §3.6.4) in the domain of `account`'s address: 128 random bits.
fn new_message_id(account: &str) -> String {
    let domain = account
        .rsplit_once('@')
        .map(|(_, domain)| domain)
        .filter(|d| {
            !d.is_empty()
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        })
        .unwrap_or("quietbox.invalid");
    let random: u128 = rand::rng().random();
    format!("quietbox.{random:032x}@{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_without_a_message_id_gets_one_and_one_with_keeps_it() {
        let raw = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: x\r\n\r\nbody\r\n";
        let (with, id) = with_message_id(raw, "owner@example.com");
        assert!(
            id.starts_with("quietbox.") && id.ends_with("@example.com"),
            "{id}"
        );
        let text = String::from_utf8(with.clone()).unwrap();
        assert!(
            text.starts_with(&format!("Message-ID: <{id}>\r\nFrom:")),
            "{text}"
        );
        let (again, same) = with_message_id(&with, "owner@example.com");
        assert_eq!((again, same), (with, id.clone()));
        let (_, other) = with_message_id(raw, "owner@example.com");
        assert_ne!(other, id, "each message gets its own id");
        let (_, odd) = with_message_id(raw, "not an address");
        assert!(odd.ends_with("@quietbox.invalid"), "{odd}");
    }
}
