//! The A2A 1.0 surface of `quietbox-a2a`: the JSON-RPC binding, the agent card and the tasks.
//! `main.rs` hands [`a2a::router`] to `quietbox_runtime::cli::main`.
#![warn(missing_docs)]
// Library code never unwraps; tests may.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod a2a;
