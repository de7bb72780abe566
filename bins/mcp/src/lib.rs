//! The MCP surface of `quietbox-mcp`: the tools over stdio and streamable HTTP (`/mcp`).
//! `main.rs` hands [`mcp::router`], [`mcp::serve_stdio`] and [`mcp::tool_scopes`] to
//! `quietbox_runtime::cli::main_with_stdio`.
#![warn(missing_docs)]
// Library code never unwraps; tests may.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod mcp;
