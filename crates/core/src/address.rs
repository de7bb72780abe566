//! Sender addresses from raw `From` headers.

use serde::{Deserialize, Serialize};

/// A parsed `From`: the lower-cased address and the display name, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// Lower-cased `local@domain`.
    pub address: String,
    /// Display name, unquoted.
    pub name: Option<String>,
}

impl Sender {
    /// Parses a `From` header value; `None` when no address can be found.
    pub fn parse(from: &str) -> Option<Sender> {
        let from = from.trim();
        let (name, address) = match (from.rfind('<'), from.rfind('>')) {
            (Some(open), Some(close)) if open < close => {
                let name = from[..open].trim().trim_matches('"').trim();
                (Some(name).filter(|n| !n.is_empty()), &from[open + 1..close])
            }
            _ => (
                None,
                from.split_whitespace()
                    .find(|w| w.contains('@'))
                    .unwrap_or(""),
            ),
        };
        let address = address
            .trim()
            .trim_matches(|c| c == '<' || c == '>' || c == '"')
            .to_ascii_lowercase();
        let (local, domain) = address.split_once('@')?;
        if local.is_empty()
            || domain.is_empty()
            || domain.contains('@')
            || address.contains(char::is_whitespace)
        {
            return None;
        }
        Some(Sender {
            address,
            name: name.map(str::to_owned),
        })
    }

    /// The local part (before `@`).
    pub fn local_part(&self) -> &str {
        self.address.split('@').next().unwrap_or_default()
    }

    /// The domain.
    pub fn domain(&self) -> &str {
        self.address.split('@').nth(1).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_and_brackets_are_handled() {
        let s = Sender::parse("\"Weekly News\" <News@Example.COM>").unwrap();
        assert_eq!(s.address, "news@example.com");
        assert_eq!(s.name.as_deref(), Some("Weekly News"));
        assert_eq!(
            Sender::parse("bob@example.org").unwrap().address,
            "bob@example.org"
        );
        assert_eq!(Sender::parse("<a@b.example>").unwrap().name, None);
    }

    #[test]
    fn garbage_has_no_sender() {
        for junk in ["", "undisclosed", "<>", "@example.com", "a@", "a@b@c"] {
            assert!(Sender::parse(junk).is_none(), "{junk:?}");
        }
    }
}
