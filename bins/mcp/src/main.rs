//! `quietbox-mcp`: the MCP server (streamable HTTP at `/mcp`, or `--transport stdio`). Glue
//! only: the tools live in this package's library (`quietbox_mcp::mcp`), settings, wiring and
//! serving in `quietbox-runtime`.

use std::process::ExitCode;

use quietbox_mcp::mcp;
use quietbox_runtime::config::Binary;

fn main() -> ExitCode {
    quietbox_runtime::cli::main_with_stdio(
        Binary::Mcp,
        mcp::router,
        Some(|app| Box::pin(mcp::serve_stdio(app))),
        |settings| mcp::tool_scopes(settings.mcp_enable_mutation_tools),
    )
}
