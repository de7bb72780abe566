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
    ///
    /// Control characters (`char::is_control`: CR, LF, ESC, NUL, …) are refused in the address,
    /// and in a value without `<…>` anywhere (there is no display name to hold them). In a
    /// display name they are escaped instead: whitespace controls become a space, the others
    /// U+FFFD, so a stranger's name cannot carry terminal escapes or forge log lines, yet the
    /// sender is still counted (a name with ESC does not hide mail from the compliance watch).
    pub fn parse(from: &str) -> Option<Sender> {
        let from = from.trim();
        let (name, address) = match (from.rfind('<'), from.rfind('>')) {
            (Some(open), Some(close)) if open < close => {
                let name = from[..open].trim().trim_matches('"').trim();
                (Some(name).filter(|n| !n.is_empty()), &from[open + 1..close])
            }
            _ if from.contains(char::is_control) => return None,
            _ => (
                None,
                from.split_whitespace()
                    .find(|w| w.contains('@'))
                    .unwrap_or(""),
            ),
        };
        if address.contains(char::is_control) {
            return None;
        }
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
            name: name.map(escape_controls),
        })
    }

    /// Parses a bare address, as a client names a sender (`news@example.com`, also
    /// `<news@example.com>`): the lower-cased address, or `None` when the value is not exactly
    /// one address or holds a control character.
    pub fn parse_address(value: &str) -> Option<String> {
        let value = value.trim();
        if value.contains(char::is_control) || value.contains(char::is_whitespace) {
            return None;
        }
        Sender::parse(value).map(|s| s.address)
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

/// `text` with control characters escaped: whitespace controls as a space, others as U+FFFD.
fn escape_controls(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            c if c.is_control() && c.is_whitespace() => ' ',
            c if c.is_control() => char::REPLACEMENT_CHARACTER,
            c => c,
        })
        .collect()
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

    #[test]
    fn control_characters_never_reach_a_parsed_address() {
        for raw in [
            "a\r\nforged@example.com",
            "news@exam\u{1b}ple.com",
            "<news\u{0}@example.com>",
            "\"News\" <news@example.com\u{1b}[31m>",
            "x\u{7f}@example.com",
            "<a@b.example\u{85}>",
            "a\u{1b}[2J news@example.com",
        ] {
            assert_eq!(Sender::parse(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn control_characters_in_a_display_name_are_escaped_not_kept() {
        let s = Sender::parse("\"Evil\u{1b}[31m\tNews\r\n\" <News@Example.com>").unwrap();
        assert_eq!(s.address, "news@example.com");
        let name = s.name.unwrap();
        assert!(!name.contains(char::is_control), "{name:?}");
        assert_eq!(name, "Evil\u{fffd}[31m News");
    }

    #[test]
    fn a_bare_address_parses_and_anything_else_does_not() {
        assert_eq!(
            Sender::parse_address(" News@Example.COM ").as_deref(),
            Some("news@example.com")
        );
        assert_eq!(
            Sender::parse_address("<news@example.com>").as_deref(),
            Some("news@example.com")
        );
        for junk in [
            "a\r\nFORGED@example.com",
            "a\r\nFORGED log line",
            "News <news@example.com>",
            "news@example.com\u{1b}",
            "not an address",
            "",
        ] {
            assert_eq!(Sender::parse_address(junk), None, "{junk:?}");
        }
    }
}
