//! `quietbox-api`: the REST API. Glue only: the protocol lives in this package's library
//! (`quietbox_api::rest`), settings, wiring and serving in `quietbox-runtime`.

use std::process::ExitCode;

use quietbox_runtime::config::Binary;

fn main() -> ExitCode {
    quietbox_runtime::cli::main(Binary::Api, quietbox_api::rest::router)
}
