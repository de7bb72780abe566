//! The fuzz targets' properties, one module per target, each a plain function of the input bytes.
//!
//! `fuzz_targets/*.rs` hand them to libFuzzer (`fuzz/run.sh`: an instrumented build, for the long
//! runs). The tests in `replay.rs` run them on the ordinary test build, which is how CI checks
//! them: every seed in `seeds/<target>/`, every input of a local corpus in `corpus/<target>/` (what
//! `fuzz/run.sh` grew, when there is one) and a fixed set of mutations of the seeds.

pub mod config;
pub mod credentials;
pub mod jsonrpc;
pub mod list_unsubscribe;
pub mod mbox_headers;

#[cfg(test)]
mod replay;
