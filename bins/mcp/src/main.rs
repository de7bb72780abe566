//! `quietbox-mcp`: the MCP server (streamable HTTP at `/mcp`, or `--transport stdio`). Glue only —
//! settings, wiring, the tools and serving live in `quietbox-runtime`.

use std::process::ExitCode;

use quietbox_runtime::config::Binary;

fn main() -> ExitCode {
    quietbox_runtime::cli::main_with_stdio(
        Binary::Mcp,
        quietbox_runtime::mcp::router,
        Some(|app| Box::pin(quietbox_runtime::mcp::serve_stdio(app))),
    )
}
