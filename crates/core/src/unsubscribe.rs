//! Choosing how to unsubscribe, and the RFC 2369 `mailto:` message.

use lettre::message::Mailbox;

use crate::list_unsubscribe::{UnsubscribeOptions, UnsubscribeTarget};
use crate::store::UnsubscribeMethod;

/// The chosen way out: RFC 8058 one-click when offered over https, else `mailto:`, else a link
/// recorded for the owner (never visited by quietbox: a plain link may need a person, and GET
/// requests to it can do anything).
pub fn choose(options: &UnsubscribeOptions) -> Option<(UnsubscribeMethod, String)> {
    if let Some(url) = options.one_click_url() {
        return Some((UnsubscribeMethod::OneClick, url.to_owned()));
    }
    if let Some(mailto) = options.mailto() {
        return Some((UnsubscribeMethod::Mailto, mailto.link()));
    }
    options
        .url()
        .map(|url| (UnsubscribeMethod::Manual, url.to_owned()))
}

/// The unsubscribe mail for a `mailto:` target, honouring its `subject` and `body`.
pub fn mailto_message(from: &str, target: &UnsubscribeTarget) -> Result<lettre::Message, String> {
    let UnsubscribeTarget::Mailto {
        address,
        subject,
        body,
    } = target
    else {
        return Err("not a mailto target".to_owned());
    };
    let from: Mailbox = from
        .parse()
        .map_err(|e| format!("bad sender address {from:?}: {e}"))?;
    let to: Mailbox = address
        .parse()
        .map_err(|e| format!("bad unsubscribe address {address:?}: {e}"))?;
    lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(subject.clone().unwrap_or_else(|| "unsubscribe".to_owned()))
        .body(body.clone().unwrap_or_else(|| "unsubscribe".to_owned()))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::list_unsubscribe::parse;

    #[test]
    fn one_click_beats_mailto_beats_manual() {
        let all = parse(
            Some("<mailto:u@l.example>, <https://l.example/u>"),
            Some("List-Unsubscribe=One-Click"),
        );
        assert_eq!(
            choose(&all),
            Some((UnsubscribeMethod::OneClick, "https://l.example/u".into()))
        );
        let no_post = parse(Some("<https://l.example/u>, <mailto:u@l.example>"), None);
        assert_eq!(
            choose(&no_post),
            Some((UnsubscribeMethod::Mailto, "mailto:u@l.example".into()))
        );
        let link_only = parse(Some("<https://l.example/u>"), None);
        assert_eq!(
            choose(&link_only),
            Some((UnsubscribeMethod::Manual, "https://l.example/u".into()))
        );
        assert_eq!(choose(&parse(None, None)), None);
    }

    #[test]
    fn the_mailto_message_carries_the_lists_subject_and_body() {
        let options = parse(
            Some("<mailto:leave@l.example?subject=REMOVE%20123&body=bye>"),
            None,
        );
        let message = mailto_message("me@example.org", options.mailto().unwrap()).unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(raw.contains("To: leave@l.example"), "{raw}");
        assert!(raw.contains("Subject: REMOVE 123"), "{raw}");
        assert!(raw.trim_end().ends_with("bye"), "{raw}");
    }
}
