//! Mail and calendar providers for quietbox.
//!
//! This crate implements core's mail and calendar ports twice: against Google (OAuth token
//! handling, the Gmail and Calendar REST APIs) and against local files (an mbox export and an
//! `.ics` calendar), which is the embedded default so that quietbox does real work with no
//! Google account. It also holds the SSRF-guarded client that sends RFC 8058 one-click
//! unsubscribe requests.
//!
//! **Architecture Invariant:** nothing outside this crate opens the mbox or speaks to Google or
//! to a sender's unsubscribe endpoint.
#![warn(missing_docs)]
// Library code never unwraps; tests may.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod google;
pub mod local;
pub mod outbound;
