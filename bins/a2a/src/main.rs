//! `quietbox-a2a`: the A2A 1.0 agent (JSON-RPC binding, agent card). Glue only: the protocol
//! lives in this package's library (`quietbox_a2a::a2a`), settings, wiring and serving in
//! `quietbox-runtime`.

use std::process::ExitCode;

use quietbox_runtime::config::Binary;

fn main() -> ExitCode {
    quietbox_runtime::cli::main(Binary::A2a, quietbox_a2a::a2a::router)
}
