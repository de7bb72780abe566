#!/usr/bin/env bash
# Builds, lints and tests quietbox-auth in every combination of its features (axum, jwks,
# redis), so that no combination rots. Run from anywhere: crates/auth/check-features.sh
#
#   crates/auth/check-features.sh        lint, tests and doc tests of every combination
#   crates/auth/check-features.sh --ci   lint every combination (all targets: tests, examples
#                                        and benches compile), tests of the smallest one (API key
#                                        and HS256 only, no reqwest); preflight tests the default
#                                        and redis features
set -euo pipefail
cd "$(dirname "$0")/../.."
ci=false
[ "${1:-}" = "--ci" ] && ci=true
combos=("" "axum" "jwks" "redis" "axum,jwks" "axum,redis" "jwks,redis" "axum,jwks,redis")
for features in "${combos[@]}"; do
    echo "== quietbox-auth --no-default-features --features '${features}'"
    args=(-p quietbox-auth --no-default-features)
    [ -n "$features" ] && args+=(--features "$features")
    cargo clippy "${args[@]}" --all-targets -- -D warnings
    if ! $ci || [ -z "$features" ]; then
        cargo nextest run "${args[@]}" --no-tests=pass
        cargo test "${args[@]}" --doc
    fi
done
