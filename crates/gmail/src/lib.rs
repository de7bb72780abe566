//! Mail and calendar providers for quietbox.
//!
//! This crate implements core's mail and calendar ports twice: against Google (OAuth token
//! handling, the Gmail and Calendar REST APIs, `List-Unsubscribe` data as Gmail returns it) and
//! against local files (an mbox export and an `.ics` calendar), which is the embedded default so
//! that quietbox does real work with no Google account.

// Modules: `local` (mbox + .ics, the default), `outbound` (SSRF-guarded one-click client),
// `google` (OAuth token, Gmail and Calendar REST clients).
