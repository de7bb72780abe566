//! The REST surface of `quietbox-api`: the routes of DESIGN.md §6, their OpenAPI document, and
//! the `Idempotency-Key` handling of its mutations. `main.rs` hands [`rest::router`] to
//! `quietbox_runtime::cli::main`.
#![warn(missing_docs)]
// Library code never unwraps; tests may.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod idempotency;
pub mod rest;
