//! Extra switches on [`FakeGoogle`](crate::FakeGoogle) for the hardening tests (issue 11), kept
//! apart from the server itself.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::FakeGoogle;

/// How the token endpoint fails during an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOutage {
    /// Every refresh has its connection closed without an answer.
    Unreachable,
    /// Every refresh answers 503 with an HTML page, as Google's front end does when overloaded.
    Unavailable,
}

impl FakeGoogle {
    /// Accepts `token` as a refresh token too (tests use distinctive values to look for in logs).
    pub fn add_refresh_token(&self, token: &str) {
        self.lock().refresh_tokens.insert(token.to_owned(), true);
    }

    /// Takes the token endpoint down (`Some`) or brings it back (`None`). The API keeps
    /// answering; calls made with an expired access token get 401 as usual.
    pub fn set_token_outage(&self, outage: Option<TokenOutage>) {
        self.lock().token_outage = outage;
    }
}

/// The token endpoint's answer during `outage`.
pub(crate) fn token_outage_answer(outage: TokenOutage) -> Response {
    match outage {
        TokenOutage::Unreachable => crate::serve::dropped(),
        TokenOutage::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "text/html; charset=UTF-8")],
            "<html><head><title>503 Service Unavailable</title></head><body>Service Unavailable</body></html>",
        )
            .into_response(),
    }
}
