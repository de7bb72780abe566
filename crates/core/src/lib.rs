//! Domain types and use cases of quietbox: availability, inbox scan and triage, unsubscribe
//! candidates and execution, the digest, and incident mode.
//!
//! Everything here is written against ports (traits) for mail, calendar, state, clock and
//! outbound HTTP; the crate does no I/O of its own and knows nothing of HTTP frameworks.
//! Adapters live in `quietbox-gmail` (mail, calendar) and `quietbox-state` (state).
//!
//! **API Boundary:** the port traits ([`store::StateStore`] and friends) are implemented by other
//! crates; change them through an issue.
#![warn(missing_docs)]
// Library code never unwraps; tests may.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod error;
pub mod ports;
pub mod store;

pub use error::{ErrorCode, ErrorKind};
