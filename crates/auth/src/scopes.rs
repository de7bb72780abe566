//! Scopes are the application's: it declares them once, on its own type, and the crate checks
//! tokens against that declaration.
//!
//! An application implements [`AppScope`] on a plain `Copy` enum (or uses nothing but its own
//! values), lists every scope in [`AppScope::ALL`] and names each as tokens spell it. A
//! [`ScopeSet`] is a 64-bit set over that list, so holding, granting and checking a scope never
//! allocates. [`RequiredScope`] puts one scope in a type, for the axum extractor
//! `Authorized<R>`.
//!
//! JWTs carry scopes in `scope` (space-separated) or `scp` (array or string); names the
//! application did not declare (`openid`, other services' scopes) are ignored.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

/// The scopes of one application, declared once on its own type.
///
/// ```
/// use quietbox_auth::AppScope;
///
/// #[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// enum NotesScope {
///     Read,
///     Write,
/// }
///
/// impl AppScope for NotesScope {
///     const ALL: &'static [Self] = &[NotesScope::Read, NotesScope::Write];
///     fn as_str(self) -> &'static str {
///         match self {
///             NotesScope::Read => "notes:read",
///             NotesScope::Write => "notes:write",
///         }
///     }
/// }
/// ```
///
/// [`Authenticator::new`](crate::Authenticator) checks the declaration and refuses a bad one
/// with a [`ConfigError`](crate::ConfigError): at most 64 scopes, none listed twice, every name
/// non-empty printable ASCII without whitespace, `"` or `\`.
pub trait AppScope: Copy + Eq + fmt::Debug + Send + Sync + 'static {
    /// Every scope the application declares, in a fixed order (the order of challenges,
    /// `scopes_supported` and `ScopeSet::iter`). The API key grants all of them.
    const ALL: &'static [Self];

    /// The scope as written in tokens (`notes:read`).
    fn as_str(self) -> &'static str;

    /// The declared scope named `name`, if any.
    fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|scope| scope.as_str() == name)
    }
}

/// A scope required by a route, as a type: the parameter of the axum extractor
/// `Authorized<R>` (feature `axum`), and usable by hand with `Principal::require(R::SCOPE)`.
///
/// ```
/// # use quietbox_auth::{AppScope, RequiredScope};
/// # #[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// # enum NotesScope { Read, Write }
/// # impl AppScope for NotesScope {
/// #     const ALL: &'static [Self] = &[NotesScope::Read, NotesScope::Write];
/// #     fn as_str(self) -> &'static str { match self { NotesScope::Read => "notes:read", NotesScope::Write => "notes:write" } }
/// # }
/// /// Requires `notes:write`.
/// struct CanWrite;
/// impl RequiredScope for CanWrite {
///     type Scope = NotesScope;
///     const SCOPE: NotesScope = NotesScope::Write;
/// }
/// ```
pub trait RequiredScope: Send + Sync + 'static {
    /// The application's scope type.
    type Scope: AppScope;
    /// The scope the route needs.
    const SCOPE: Self::Scope;
}

/// Checks a declaration: at most 64 names, none twice, each non-empty printable ASCII without
/// whitespace, `"` or `\\` (names go into `scope="…"` challenges).
fn check_names(names: &[&str]) -> Result<(), String> {
    if names.len() > 64 {
        return Err(format!("{} scopes declared; at most 64 fit", names.len()));
    }
    for (i, name) in names.iter().enumerate() {
        let printable = name
            .bytes()
            .all(|b| b > b' ' && b < 0x7f && b != b'"' && b != b'\\');
        if name.is_empty() || !printable {
            return Err(format!(
                "scope {name:?}: a name is non-empty printable ASCII without whitespace, '\"' or '\\'"
            ));
        }
        if names[..i].contains(name) {
            return Err(format!("scope {name:?} is declared twice"));
        }
    }
    Ok(())
}

/// Checks `S`'s declaration; [`Authenticator::new`](crate::Authenticator) refuses a bad one.
pub(crate) fn check_declaration<S: AppScope>() -> Result<(), String> {
    let names: Vec<&'static str> = S::ALL.iter().map(|s| s.as_str()).collect();
    check_names(&names)
}

/// A set of one application's scopes: a bit per declared scope, so copying and checking cost
/// nothing.
pub struct ScopeSet<S> {
    bits: u64,
    scope: PhantomData<fn() -> S>,
}

impl<S: AppScope> ScopeSet<S> {
    const fn from_bits(bits: u64) -> Self {
        ScopeSet {
            bits,
            scope: PhantomData,
        }
    }

    /// No scope.
    pub const fn empty() -> Self {
        Self::from_bits(0)
    }

    /// Every declared scope (what the API key grants).
    pub fn all() -> Self {
        let count = S::ALL.len();
        if count >= 64 {
            Self::from_bits(u64::MAX)
        } else {
            Self::from_bits((1u64 << count) - 1)
        }
    }

    fn bit(scope: S) -> u64 {
        // At most 64 comparisons of a `Copy` value; for an enum the compiler folds this to
        // a jump table.
        match S::ALL.iter().position(|s| *s == scope) {
            Some(index) => 1u64 << index,
            None => 0,
        }
    }

    /// Adds a scope.
    pub fn insert(&mut self, scope: S) {
        self.bits |= Self::bit(scope);
    }

    /// Whether the set holds `scope`.
    pub fn contains(self, scope: S) -> bool {
        self.bits & Self::bit(scope) != 0
    }

    /// Whether the set holds no scope.
    pub fn is_empty(self) -> bool {
        self.bits == 0
    }

    /// How many scopes the set holds.
    pub fn len(self) -> usize {
        self.bits.count_ones() as usize
    }

    /// The scopes in declaration order.
    pub fn iter(self) -> impl Iterator<Item = S> {
        S::ALL
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.bits & (1u64 << i) != 0)
            .map(|(_, s)| *s)
    }

    /// Parses a space-separated list; undeclared names (other services' scopes) are ignored.
    pub fn from_space_separated(text: &str) -> Self {
        text.split_ascii_whitespace().filter_map(S::parse).collect()
    }

    /// Adds every scope of `other`.
    pub fn union(self, other: Self) -> Self {
        Self::from_bits(self.bits | other.bits)
    }
}

impl<S: AppScope> FromIterator<S> for ScopeSet<S> {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut set = ScopeSet::empty();
        for scope in iter {
            set.insert(scope);
        }
        set
    }
}

impl<S> Clone for ScopeSet<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for ScopeSet<S> {}

impl<S> Default for ScopeSet<S> {
    fn default() -> Self {
        ScopeSet {
            bits: 0,
            scope: PhantomData,
        }
    }
}

impl<S> PartialEq for ScopeSet<S> {
    fn eq(&self, other: &Self) -> bool {
        self.bits == other.bits
    }
}

impl<S> Eq for ScopeSet<S> {}

impl<S> Hash for ScopeSet<S> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bits.hash(state);
    }
}

impl<S: AppScope> fmt::Debug for ScopeSet<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(S::as_str)).finish()
    }
}

/// The names, space-separated, in declaration order (the `scope` claim's form).
impl<S: AppScope> fmt::Display for ScopeSet<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for scope in self.iter() {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
            first = false;
        }
        Ok(())
    }
}

/// A small application's scopes, for this crate's unit tests.
#[cfg(test)]
pub(crate) mod test_scopes {
    use super::AppScope;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Notes {
        Read,
        Write,
        Share,
    }

    impl AppScope for Notes {
        const ALL: &'static [Self] = &[Notes::Read, Notes::Write, Notes::Share];
        fn as_str(self) -> &'static str {
            match self {
                Notes::Read => "notes:read",
                Notes::Write => "notes:write",
                Notes::Share => "notes:share",
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_scopes::Notes;
    use super::*;

    #[test]
    fn every_declared_scope_round_trips_through_its_name() {
        for scope in Notes::ALL {
            assert_eq!(Notes::parse(scope.as_str()), Some(*scope));
        }
        assert_eq!(Notes::parse("notes:delete"), None);
        assert_eq!(check_declaration::<Notes>(), Ok(()));
    }

    #[test]
    fn space_separated_lists_ignore_undeclared_scopes() {
        let set =
            ScopeSet::<Notes>::from_space_separated("openid  notes:share mail:scan notes:read");
        assert!(set.contains(Notes::Read));
        assert!(set.contains(Notes::Share));
        assert!(!set.contains(Notes::Write));
        assert_eq!(set.len(), 2);
        assert_eq!(set.to_string(), "notes:read notes:share");
        assert_eq!(format!("{set:?}"), r#"{"notes:read", "notes:share"}"#);
    }

    #[test]
    fn all_holds_every_declared_scope_and_empty_none() {
        assert_eq!(
            ScopeSet::<Notes>::all().iter().collect::<Vec<_>>(),
            Notes::ALL
        );
        assert!(ScopeSet::<Notes>::empty().is_empty());
        assert_eq!(
            ScopeSet::<Notes>::empty().union(ScopeSet::all()),
            ScopeSet::all()
        );
    }

    #[test]
    fn sixty_four_scopes_fit_and_bad_declarations_are_refused() {
        let many: Vec<String> = (0..64).map(|i| format!("s{i}")).collect();
        let names: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(check_names(&names), Ok(()));
        for bad in [
            vec!["a", "a"],
            vec![""],
            vec!["a b"],
            vec!["a\"b"],
            vec!["a\\b"],
            vec!["é"],
        ] {
            assert!(check_names(&bad).is_err(), "{bad:?} was accepted");
        }
        let too_many: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
        let names: Vec<&str> = too_many.iter().map(String::as_str).collect();
        assert!(check_names(&names).is_err());
    }
}
