#!/usr/bin/env bash
# Installs the pinned protocol tools of tests/conformance (package.json + package-lock.json:
# the MCP conformance suite, the A2A JavaScript SDK, Node 22 as the npm package
# node-linux-<arch>) into target/conformance with `npm ci`, from the npm registry only.
# Cached: skips the install when target/conformance was installed from the same package.json
# and package-lock.json.
# Prints the path of the Node 22 binary on its last line of stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
prefix="${QUIETBOX_CONFORMANCE_DIR:-$root/target/conformance}"
stamp="$prefix/.installed-lock.sha256"
want="$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)"

case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "tests/conformance: no Node 22 package for $(uname -m)" >&2; exit 1 ;;
esac
node22="$prefix/node_modules/node-linux-$arch/bin/node"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$node22" ]; then
  echo "tests/conformance: tools cached in $prefix" >&2
else
  echo "tests/conformance: npm ci into $prefix" >&2
  mkdir -p "$prefix"
  rm -f "$stamp"
  cp "$here/package.json" "$here/package-lock.json" "$prefix/"
  # The system npm installs (Node 20 is enough for npm itself); the tools then run on Node 22.
  # --ignore-scripts: no package here needs an install script (node-linux-* ships bin/node).
  (cd "$prefix" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  [ -x "$node22" ] || { echo "tests/conformance: $node22 missing after npm ci" >&2; exit 1; }
  echo "$want" >"$stamp"
fi
"$node22" --version >&2
echo "$node22"
