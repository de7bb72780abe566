#!/usr/bin/env bash
# Builds, lints and tests quietbox-auth in every combination of its features (axum, jwks,
# redis), so that no combination rots. Run from anywhere: crates/auth/check-features.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
combos=("" "axum" "jwks" "redis" "axum,jwks" "axum,redis" "jwks,redis" "axum,jwks,redis")
for features in "${combos[@]}"; do
    echo "== quietbox-auth --no-default-features --features '${features}'"
    args=(-p quietbox-auth --no-default-features)
    [ -n "$features" ] && args+=(--features "$features")
    cargo clippy "${args[@]}" --all-targets -- -D warnings
    cargo nextest run "${args[@]}" --no-tests=pass
    cargo test "${args[@]}" --doc
done
