//! Extra switches on [`FakeGoogle`](crate::FakeGoogle) for the hardening tests (issue 11), kept
//! apart from the server itself.

use crate::FakeGoogle;

impl FakeGoogle {
    /// Accepts `token` as a refresh token too (tests use distinctive values to look for in logs).
    pub fn add_refresh_token(&self, token: &str) {
        self.lock().refresh_tokens.insert(token.to_owned(), true);
    }
}
