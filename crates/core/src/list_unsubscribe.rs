//! `List-Unsubscribe` (RFC 2369) and `List-Unsubscribe-Post` (RFC 8058) parsing.
//!
//! Headers in the wild are folded, oddly spaced, and sometimes junk. Parsing never fails and
//! never panics: it keeps every well-formed `<...>` entry it can read and drops the rest.

use serde::{Deserialize, Serialize};

/// One way to unsubscribe, as a list offers it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UnsubscribeTarget {
    /// An HTTP(S) URL.
    Url {
        /// The URL.
        url: String,
        /// Whether it is `https` (only those may be used for one-click).
        https: bool,
    },
    /// A `mailto:` address, with the `subject` and `body` the list asks for.
    Mailto {
        /// The recipient.
        address: String,
        /// `subject` parameter.
        subject: Option<String>,
        /// `body` parameter.
        body: Option<String>,
    },
}

impl UnsubscribeTarget {
    /// The target as a link (`https://…` or `mailto:…`), for records and digests.
    pub fn link(&self) -> String {
        match self {
            UnsubscribeTarget::Url { url, .. } => url.clone(),
            UnsubscribeTarget::Mailto {
                address,
                subject,
                body,
            } => {
                let mut url = format!("mailto:{address}");
                let mut params = url::form_urlencoded::Serializer::new(String::new());
                if let Some(s) = subject {
                    params.append_pair("subject", s);
                }
                if let Some(b) = body {
                    params.append_pair("body", b);
                }
                let query = params.finish();
                if !query.is_empty() {
                    url.push('?');
                    url.push_str(&query);
                }
                url
            }
        }
    }
}

/// Everything a message says about unsubscribing.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct UnsubscribeOptions {
    /// Targets in header order.
    pub targets: Vec<UnsubscribeTarget>,
    /// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` was present (RFC 8058).
    pub one_click: bool,
}

impl UnsubscribeOptions {
    /// The first https URL, when the list supports RFC 8058 one-click.
    pub fn one_click_url(&self) -> Option<&str> {
        if !self.one_click {
            return None;
        }
        self.targets.iter().find_map(|t| match t {
            UnsubscribeTarget::Url { url, https: true } => Some(url.as_str()),
            _ => None,
        })
    }

    /// The first `mailto:` target.
    pub fn mailto(&self) -> Option<&UnsubscribeTarget> {
        self.targets
            .iter()
            .find(|t| matches!(t, UnsubscribeTarget::Mailto { .. }))
    }

    /// The first URL (for a manual unsubscribe the owner visits).
    pub fn url(&self) -> Option<&str> {
        self.targets.iter().find_map(|t| match t {
            UnsubscribeTarget::Url { url, .. } => Some(url.as_str()),
            _ => None,
        })
    }

    /// Whether the message offers any way at all.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// Parses the two headers. `post` is `List-Unsubscribe-Post`, when present.
pub fn parse(list_unsubscribe: Option<&str>, post: Option<&str>) -> UnsubscribeOptions {
    let targets = list_unsubscribe.map(parse_targets).unwrap_or_default();
    let one_click = post.is_some_and(is_one_click);
    UnsubscribeOptions { targets, one_click }
}

/// Whether a `List-Unsubscribe-Post` value is the RFC 8058 one (`List-Unsubscribe=One-Click`).
pub fn is_one_click(post: &str) -> bool {
    let compact: String = post.chars().filter(|c| !c.is_whitespace()).collect();
    compact.eq_ignore_ascii_case("List-Unsubscribe=One-Click")
}

fn parse_targets(header: &str) -> Vec<UnsubscribeTarget> {
    // Unfold: RFC 5322 folding is CRLF followed by whitespace; inside <> whitespace is not
    // significant (RFC 2369 §2), so drop all of it there.
    let mut targets = Vec::new();
    let mut rest = header;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else { break };
        let inner: String = after[..close]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if let Some(target) = parse_target(&inner)
            && !targets.contains(&target)
        {
            targets.push(target);
        }
        rest = &after[close + 1..];
    }
    targets
}

fn parse_target(raw: &str) -> Option<UnsubscribeTarget> {
    let url = url::Url::parse(raw).ok()?;
    match url.scheme() {
        "https" | "http" => {
            url.host_str()?;
            Some(UnsubscribeTarget::Url {
                https: url.scheme() == "https",
                url: url.to_string(),
            })
        }
        "mailto" => {
            let address = percent_decode(url.path());
            if address.is_empty() || !address.contains('@') || address.contains(',') {
                return None;
            }
            let mut subject = None;
            let mut body = None;
            for (key, value) in url.query_pairs() {
                match key.to_ascii_lowercase().as_str() {
                    "subject" => subject = Some(value.into_owned()),
                    "body" => body = Some(value.into_owned()),
                    _ => {}
                }
            }
            Some(UnsubscribeTarget::Mailto {
                address,
                subject,
                body,
            })
        }
        _ => None,
    }
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(header: &str, post: Option<&str>, expected_links: &[&str], one_click: bool) {
        let options = parse(Some(header), post);
        let links: Vec<String> = options
            .targets
            .iter()
            .map(UnsubscribeTarget::link)
            .collect();
        assert_eq!(links, expected_links, "header {header:?}");
        assert_eq!(
            options.one_click_url().is_some(),
            one_click,
            "header {header:?}"
        );
    }

    #[test]
    fn mailto_and_https_entries_are_read_in_order() {
        check(
            "<mailto:unsub@news.example.com?subject=unsubscribe>, <https://news.example.com/u/abc>",
            Some("List-Unsubscribe=One-Click"),
            &[
                "mailto:unsub@news.example.com?subject=unsubscribe",
                "https://news.example.com/u/abc",
            ],
            true,
        );
    }

    #[test]
    fn folded_headers_and_odd_spacing_are_tolerated() {
        check(
            "<https://news.example.com/u/\r\n abc>,\r\n\t< mailto:x@example.com >",
            Some("  List-Unsubscribe = One-Click "),
            &["https://news.example.com/u/abc", "mailto:x@example.com"],
            true,
        );
    }

    #[test]
    fn one_click_needs_the_post_header_and_an_https_url() {
        check(
            "<https://a.example/u>",
            None,
            &["https://a.example/u"],
            false,
        );
        check(
            "<http://a.example/u>",
            Some("List-Unsubscribe=One-Click"),
            &["http://a.example/u"],
            false,
        );
        check(
            "<https://a.example/u>",
            Some("List-Unsubscribe=Yes"),
            &["https://a.example/u"],
            false,
        );
    }

    #[test]
    fn junk_is_dropped() {
        check("please unsubscribe me", None, &[], false);
        check(
            "<javascript:alert(1)>, <ftp://x.example/>, <>, <mailto:>",
            None,
            &[],
            false,
        );
        check("<https://ok.example/u", None, &[], false);
        check("<mailto:a@example.com,b@example.com>", None, &[], false);
    }

    #[test]
    fn mailto_parameters_are_decoded() {
        let options = parse(
            Some("<mailto:list%2Bunsub@example.com?Subject=Remove%20me&body=please>"),
            None,
        );
        assert_eq!(
            options.mailto(),
            Some(&UnsubscribeTarget::Mailto {
                address: "list+unsub@example.com".into(),
                subject: Some("Remove me".into()),
                body: Some("please".into()),
            })
        );
    }

    proptest! {
        #[test]
        fn parsing_never_panics(header in ".{0,300}", post in proptest::option::of(".{0,60}")) {
            let _ = parse(Some(&header), post.as_deref());
        }

        #[test]
        fn every_parsed_target_round_trips(header in "(<(https://[a-z]{1,8}\\.example/[a-z0-9]{0,8}|mailto:[a-z]{1,6}@[a-z]{1,6}\\.example)>[ ,\t]{0,3}){0,4}") {
            let options = parse(Some(&header), None);
            for target in &options.targets {
                let again = parse(Some(&format!("<{}>", target.link())), None);
                prop_assert_eq!(again.targets.first(), Some(target));
            }
        }

        #[test]
        fn arbitrary_bracketed_text_yields_only_valid_targets(inner in "[ -~]{0,80}") {
            let options = parse(Some(&format!("<{inner}>")), Some("List-Unsubscribe=One-Click"));
            for target in options.targets {
                match target {
                    UnsubscribeTarget::Url { url, .. } => prop_assert!(url.starts_with("http")),
                    UnsubscribeTarget::Mailto { address, .. } => prop_assert!(address.contains('@')),
                }
            }
        }
    }
}
