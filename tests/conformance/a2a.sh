#!/usr/bin/env bash
# The official A2A JavaScript SDK against quietbox-a2a (README.md in this directory).
# Usage: tests/conformance/a2a.sh   (builds nothing: QUIETBOX_A2A_BIN, default target/debug/quietbox-a2a)
# Installs the pinned tools into target/conformance on first use (install.sh), runs
# a2a_js.mjs on Node 22, prints passed / failed, and exits non-zero on a failing check that
# a2a-known-failures.txt does not list (or on a stale entry of that list).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
prefix="${QUIETBOX_CONFORMANCE_DIR:-$root/target/conformance}"
binary="${QUIETBOX_A2A_BIN:-$root/target/debug/quietbox-a2a}"
[ -x "$binary" ] || { echo "tests/conformance/a2a.sh: no $binary (cargo build -p quietbox-a2a first)" >&2; exit 1; }
node22="$("$here/install.sh" | tail -n 1)"
# The scripts run from the install prefix so that their imports resolve in its node_modules.
cp "$here/lib.mjs" "$here/a2a_js.mjs" "$prefix/"
exec "$node22" "$prefix/a2a_js.mjs" "$(realpath "$binary")" "$root/data/sample" "$here/a2a-known-failures.txt"
