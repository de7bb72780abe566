-- wrk script: sends the request described by WRK_METHOD / WRK_PATH / WRK_BODY / WRK_KEY and
-- counts responses per status, so the soak can tell rate-limit 429s from real errors.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  counts = {}
  wrk.method = os.getenv("WRK_METHOD") or "GET"
  wrk.path = os.getenv("WRK_PATH") or "/health"
  local body = os.getenv("WRK_BODY")
  if body and body ~= "" then
    wrk.body = body
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["Accept"] = "application/json, text/event-stream"
  end
  local key = os.getenv("WRK_KEY")
  if key and key ~= "" then
    wrk.headers["X-API-Key"] = key
  end
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    for status, n in pairs(c) do
      total[status] = (total[status] or 0) + n
    end
  end
  local line = "statuses"
  for status, n in pairs(total) do
    line = line .. " " .. status .. "=" .. n
  end
  io.write(line .. "\n")
  io.write(string.format("socket_errors connect=%d read=%d write=%d timeout=%d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
  io.write(string.format("p99_ms %.2f\n", latency:percentile(99) / 1000))
end
