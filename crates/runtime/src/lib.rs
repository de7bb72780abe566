//! Everything the three binaries share beyond the domain: configuration loading (defaults, an
//! optional TOML file, then the environment, with the variable names of `DESIGN.md`), wiring of
//! providers and state, HTTP plumbing (request ids, redaction, timeouts, problem+json), telemetry
//! and metrics, and graceful shutdown. It keeps `bins/*` down to flag parsing and a call in here.
#![warn(missing_docs)]
// Library code never unwraps; tests may.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod cli;
pub mod config;
pub mod http;
pub mod operations;
pub use operations::scopes;
pub mod problem;
pub mod redaction;
pub mod telemetry;
pub mod wiring;
