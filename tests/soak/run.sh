#!/usr/bin/env bash
# Load and soak on loopback: each binary under N concurrent connections for S seconds (wrk),
# while its RSS and open file descriptors are sampled once a second from /proc.
#
#   tests/soak/run.sh [seconds] [connections] [bin-dir]
#
# Defaults 10 s, 200 connections, target/release (CI-sized: build it first with
# `cargo xtask bench --build-only`, as .ci/run does, which the benchmarks then reuse, or with
# `cargo build --release --bins`); the issue's run is `tests/soak/run.sh 60 200`. Fails when a response is neither 2xx nor a
# rate-limit 429, when a socket error occurs, or when RSS or descriptors keep growing after the
# warm-up (last sample vs the sample at half the run: RSS may grow at most 10% + 4 MiB,
# descriptors at most 8 — allocator noise, not a leak).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-10}"
connections="${2:-200}"
bins="${3:-target/release}"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
here=tests/soak
key="soak-key-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
status=0
printf '%-6s %9s %8s %8s %7s %9s %9s %6s %6s %s\n' binary requests 2xx refused other rss_warm rss_end fd_w fd_e result

soak() {
  # refused: the statuses that are a deliberate, announced refusal (with Retry-After) rather
  # than an error: the rate limiter's 429, and for MCP the session cap's 503 (MCP_MAX_SESSIONS).
  local name=$1 method=$2 path=$3 body=$4 refused=${5:-429}
  local data port pid log samples
  data=$(mktemp -d); port=$(free_port); log="$data/server.log"; samples="$data/samples"
  AGENT_API_KEY="$key" DATA_DIR="$data" BIND_ADDR="127.0.0.1:$port" MAIL_PROVIDER=local \
    LOCAL_MBOX=data/sample/inbox.mbox LOCAL_ICS=data/sample/calendar.ics SCHEDULER_ENABLED=false \
    RATE_LIMIT_READ_PER_MIN=100000000 RATE_LIMIT_READ_BURST=100000000 \
    "$bins/quietbox-$name" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
  : >"$samples"
  ( while kill -0 "$pid" 2>/dev/null; do
      rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
      echo "$rss $fds" >>"$samples"; sleep 1
    done ) &
  local sampler=$!
  local out
  out=$(WRK_METHOD="$method" WRK_PATH="$path" WRK_BODY="$body" WRK_KEY="$key" \
    wrk -t2 -c"$connections" -d"${seconds}s" --timeout 5s -s "$here/statuses.lua" "http://127.0.0.1:$port" 2>&1) || true
  sleep 1
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  local requests ok limited other errors
  # One awk over wrk's output: the statuses line of statuses.lua, then its socket errors.
  read -r requests ok limited other errors < <(echo "$out" | awk -v refused="$refused" '
    /requests in/ { requests = $1 }
    /^statuses/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); s = kv[1] + 0; n = kv[2] + 0;
        if (s >= 200 && s < 300) ok += n; else if (index(" " refused " ", " " s " ")) limited += n; else other += n } }
    /^socket_errors/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); errors += kv[2] } }
    END { printf "%d %d %d %d %d\n", requests, ok, limited, other, errors }')
  local n warm last
  n=$(wc -l <"$samples")
  warm=$(sed -n "$(( n / 2 > 0 ? n / 2 : 1 ))p" "$samples")
  last=$(tail -1 "$samples")
  local rss_w=${warm% *} fd_w=${warm#* } rss_e=${last% *} fd_e=${last#* }
  local result=ok
  [ "${other:-0}" -eq 0 ] || result="non-2xx/429 responses"
  [ "${errors:-0}" -eq 0 ] || result="socket errors"
  [ "${ok:-0}" -gt 0 ] || result="no successful response"
  [ "$rss_e" -le $(( rss_w + rss_w / 10 + 4096 )) ] || result="RSS grew"
  [ "$fd_e" -le $(( fd_w + 8 )) ] || result="descriptors grew"
  if grep -q panicked "$log"; then result="panic in server log"; fi
  printf '%-6s %9s %8s %8s %7s %8sK %8sK %6s %6s %s\n' "$name" "$requests" "$ok" "$limited" "$other" "$rss_w" "$rss_e" "$fd_w" "$fd_e" "$result"
  if [ "$result" != ok ]; then status=1; echo "$out" | tail -15; tail -5 "$log"; fi
  rm -rf "$data"
}

soak api GET /v1/unsubscribe/candidates ""
soak a2a GET /.well-known/agent-card.json ""
soak a2a POST / '{"jsonrpc":"2.0","id":1,"method":"ListTasks","params":{"pageSize":5}}'
# Every request opens a session: past MCP_MAX_SESSIONS the cap refuses, and memory stays flat.
soak mcp POST /mcp '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"soak","version":"1"}}}' "429 503"
exit $status
