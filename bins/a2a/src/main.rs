//! `quietbox-a2a`: the A2A 1.0 agent (JSON-RPC binding, agent card). Glue only — settings,
//! wiring, the protocol and serving live in `quietbox-runtime`.

use std::process::ExitCode;

use quietbox_runtime::config::Binary;

fn main() -> ExitCode {
    quietbox_runtime::cli::main(Binary::A2a, quietbox_runtime::a2a::router)
}
