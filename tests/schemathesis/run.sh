#!/usr/bin/env bash
# Property-based API fuzzing of quietbox-api with schemathesis, against its own /openapi.json.
#
#   tests/schemathesis/run.sh [max-examples] [quietbox-api binary]
#
# Defaults: 25 examples per operation (CI-sized) and target/debug/quietbox-api. The long run is
# `tests/schemathesis/run.sh 1000 target/release/quietbox-api`. It installs schemathesis into
# target/schemathesis-venv, starts the binary on a free loopback port with a fresh data directory
# on the local sample, runs every operation with a valid API key, and fails on any 5xx or any
# response that does not match the schema (status code, content type, headers, body).
set -euo pipefail
cd "$(dirname "$0")/../.."
examples="${1:-25}"
binary="${2:-target/debug/quietbox-api}"
venv=target/schemathesis-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==4.32.5"
fi

data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
key="schemathesis-key-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
log="$data/api.log"
# Generous limits: the run is about shapes, and 429s would hide the operations behind them.
# UNSUBSCRIBE_DENY='**' keeps every outbound one-click request inside this machine: a refused
# host is the owner's problem to see (a recorded failure), never a reason to reach the network.
AGENT_API_KEY="$key" DATA_DIR="$data" BIND_ADDR="127.0.0.1:$port" MAIL_PROVIDER=local \
  LOCAL_MBOX=data/sample/inbox.mbox LOCAL_ICS=data/sample/calendar.ics \
  RATE_LIMIT_PER_MIN=100000 RATE_LIMIT_BURST=100000 \
  RATE_LIMIT_READ_PER_MIN=100000 RATE_LIMIT_READ_BURST=100000 SCHEDULER_ENABLED=false \
  UNSUBSCRIBE_DENY='**' "$binary" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.1
done

status=0
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --header "X-API-Key: $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-examples "$examples" --seed 20261125 --no-color --workers 1 \
  --report junit --report-dir target/schemathesis-report || status=$?
if grep -q "panicked" "$log"; then
  echo "quietbox-api panicked during the run:"; grep -A5 panicked "$log"; status=1
fi
if grep -qF "$key" "$log"; then
  echo "the API key appeared in the server log"; status=1
fi
exit $status
