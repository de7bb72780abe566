//! Domain types and use cases of quietbox: availability, inbox scan and triage, unsubscribe
//! candidates and execution, sender decisions and the unsubscribe compliance watch, the digest,
//! and incident mode.
//!
//! Everything here is written against ports (traits) for mail, calendar, state, clock and
//! outbound HTTP; the crate does no I/O of its own and knows nothing of HTTP frameworks.
//! Adapters live in `quietbox-gmail` (mail, calendar, outbound) and `quietbox-state` (state).
//! The protocol binaries call one [`service::Quietbox`] value, one method per operation.
//!
//! **API Boundary:** the port traits ([`store::StateStore`], [`ports::MailProvider`],
//! [`ports::CalendarProvider`], [`ports::OneClickClient`], [`ports::Clock`]) are implemented by
//! other crates; change them through an issue.
#![warn(missing_docs)]
// Library code never unwraps; tests may.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod address;
pub mod availability;
pub mod candidates;
pub mod compliance;
pub mod digest;
pub mod error;
pub mod list_unsubscribe;
pub mod ports;
pub mod senders;
pub mod service;
pub mod store;
pub mod triage;
pub mod unsubscribe;

pub use error::{ErrorCode, ErrorKind};
pub use service::{CoreError, Quietbox};
