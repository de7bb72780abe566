#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer on the stable toolchain and runs each for a while.
#
#   fuzz/run.sh                 # every target, 600 s each (the issue's long run)
#   fuzz/run.sh 30              # every target, 30 s each
#   fuzz/run.sh 60 jsonrpc      # one target
#   FUZZ_PROFILE=dev fuzz/run.sh 20   # an unoptimised build, which compiles in a third of the
#                                     # time; slower per input, enough for a short run
#
# CI does not run this: the ordinary test build replays every target on its seeds, the local
# corpus and fixed mutations (`cargo nextest run -p quietbox-fuzz`, src/replay.rs).
#
# Coverage comes from LLVM's sancov pass, which stable rustc exposes through `-C passes` and
# `-C llvm-args`; no `-Z` flag and so no nightly. (AddressSanitizer would need `-Zsanitizer`;
# safe Rust gains little from it, and the workspace forbids `unsafe`.) Crashes land in
# fuzz/artifacts/<target>/ and make this script fail; the corpus grows in fuzz/corpus/<target>/,
# seeded from fuzz/seeds/<target>/. The build has a target directory of its own (fuzz/target),
# so its instrumented artifacts never mix with the workspace's.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(list_unsubscribe mbox_headers credentials config jsonrpc)

export RUSTFLAGS="-C passes=sancov-module -C llvm-args=-sanitizer-coverage-level=4 \
-C llvm-args=-sanitizer-coverage-inline-8bit-counters -C llvm-args=-sanitizer-coverage-pc-table \
-C llvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -C debug-assertions -C overflow-checks"
export CARGO_TARGET_DIR="$PWD/target"
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros (as cargo-fuzz does):
# they run on the host and must not reference libFuzzer's coverage callbacks.
host=$(rustc -vV | sed -n 's/^host: //p')
# The workspace's `fuzz` profile (opt-level 2, assertions on), or `dev`.
profile="${FUZZ_PROFILE:-release}"
case "$profile" in
  release) cargo_profile=fuzz; bin_dir="target/$host/fuzz" ;;
  dev) cargo_profile=dev; bin_dir="target/$host/debug" ;;
  *) echo "FUZZ_PROFILE must be release or dev, not $profile" >&2; exit 2 ;;
esac
cargo build -p quietbox-fuzz --features libfuzzer --bins --profile "$cargo_profile" --target "$host"
status=0
printf '%-18s %12s %10s %8s\n' target execs exec/s result
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  seeds=()
  [ -d "seeds/$target" ] && seeds=("seeds/$target")
  log="artifacts/$target/run.log"
  if "$bin_dir/$target" -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 \
      -artifact_prefix="artifacts/$target/" -print_final_stats=1 \
      "corpus/$target" "${seeds[@]}" >"$log" 2>&1; then
    result=ok
  else
    result=CRASH
    status=1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  rate=$(( execs / (seconds > 0 ? seconds : 1) ))
  printf '%-18s %12s %10s %8s\n' "$target" "$execs" "$rate" "$result"
  if [ "$result" = CRASH ]; then
    grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -8 || true
  fi
done
exit $status
