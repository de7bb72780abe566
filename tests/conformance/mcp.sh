#!/usr/bin/env bash
# The official MCP conformance suite against quietbox-mcp (README.md in this directory).
# Usage: tests/conformance/mcp.sh   (builds nothing: QUIETBOX_MCP_BIN, default target/debug/quietbox-mcp)
# Installs the pinned tools into target/conformance on first use (install.sh), starts
# quietbox-mcp over streamable HTTP on loopback with the sample data, runs every server
# scenario, prints passed / failed / not applicable, and exits non-zero on an applicable failing
# scenario that mcp-known-failures.txt does not list (or on a stale entry of that list).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
prefix="${QUIETBOX_CONFORMANCE_DIR:-$root/target/conformance}"
binary="${QUIETBOX_MCP_BIN:-$root/target/debug/quietbox-mcp}"
[ -x "$binary" ] || { echo "tests/conformance/mcp.sh: no $binary (cargo build -p quietbox-mcp first)" >&2; exit 1; }
node22="$("$here/install.sh" | tail -n 1)"
# The scripts run from the install prefix so that their imports resolve in its node_modules.
cp "$here/lib.mjs" "$here/mcp_conformance.mjs" "$here/mcp_spec.mjs" "$prefix/"
exec "$node22" "$prefix/mcp_conformance.mjs" "$(realpath "$binary")" "$root/data/sample" \
  "$here/mcp-known-failures.txt" "$prefix/results-mcp"
