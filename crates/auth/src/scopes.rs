//! The five scopes of quietbox and sets of them.
//!
//! One table for all three protocols: the same operation needs the same scope in REST, A2A and
//! MCP. JWTs carry scopes in `scope` (space-separated) or `scp` (array or string).

use std::fmt;
use std::str::FromStr;

/// A permission a credential may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Free/busy and free slots.
    AvailabilityRead,
    /// Inbox scan and triage.
    MailScan,
    /// Candidate discovery, unsubscribe history, compliance.
    UnsubscribeRead,
    /// Executing an unsubscribe, sender decisions.
    UnsubscribeExecute,
    /// Digest scan and send.
    UnsubscribeDigest,
}

impl Scope {
    /// Every scope, in table order.
    pub const ALL: [Scope; 5] = [
        Scope::AvailabilityRead,
        Scope::MailScan,
        Scope::UnsubscribeRead,
        Scope::UnsubscribeExecute,
        Scope::UnsubscribeDigest,
    ];

    /// The scope as written in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::AvailabilityRead => "availability:read",
            Scope::MailScan => "mail:scan",
            Scope::UnsubscribeRead => "unsubscribe:read",
            Scope::UnsubscribeExecute => "unsubscribe:execute",
            Scope::UnsubscribeDigest => "unsubscribe:digest",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the five scopes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope(s.to_owned()))
    }
}

/// A set of scopes (a bit set: five scopes fit in a byte, and checks cost nothing).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(u8);

impl ScopeSet {
    /// No scope.
    pub const fn empty() -> Self {
        ScopeSet(0)
    }

    /// All five scopes (what the API key grants).
    pub const fn all() -> Self {
        ScopeSet(0b1_1111)
    }

    fn bit(scope: Scope) -> u8 {
        1 << (scope as u8)
    }

    /// Adds a scope.
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= Self::bit(scope);
    }

    /// Whether the set holds `scope`.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & Self::bit(scope) != 0
    }

    /// The scopes in table order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Parses a space-separated list; unknown scopes (other services' scopes) are ignored.
    pub fn from_space_separated(text: &str) -> Self {
        text.split_ascii_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect()
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut set = ScopeSet::empty();
        for scope in iter {
            set.insert(scope);
        }
        set
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Scope::as_str))
            .finish()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Scope::as_str).collect();
        f.write_str(&names.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_round_trips_through_its_name() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
        }
        assert!("mail:write".parse::<Scope>().is_err());
    }

    #[test]
    fn space_separated_lists_ignore_foreign_scopes() {
        let set = ScopeSet::from_space_separated("openid  mail:scan unsubscribe:read email");
        assert!(set.contains(Scope::MailScan));
        assert!(set.contains(Scope::UnsubscribeRead));
        assert!(!set.contains(Scope::UnsubscribeExecute));
        assert_eq!(set.to_string(), "mail:scan unsubscribe:read");
    }

    #[test]
    fn all_holds_the_five_scopes() {
        assert_eq!(ScopeSet::all().iter().count(), 5);
        assert_eq!(ScopeSet::empty().iter().count(), 0);
    }
}
