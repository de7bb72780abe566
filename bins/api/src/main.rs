//! `quietbox-api`: the REST API. Glue only — settings, wiring, the router and serving live in
//! `quietbox-runtime`.

use std::process::ExitCode;

use quietbox_runtime::config::Binary;

fn main() -> ExitCode {
    quietbox_runtime::cli::main(Binary::Api, quietbox_runtime::rest::router)
}
