-- wrk script: POSTs the same Avro file to the path in BENCH_PATH, each
-- request for a dataset of its own (BENCH_ROUND keeps rounds apart) so that
-- none is a duplicate, and counts the answers by status.  BENCH_BODY names
-- the file.

local body_file = os.getenv("BENCH_BODY")
local path = os.getenv("BENCH_PATH") or "/upload"
local round = os.getenv("BENCH_ROUND") or "0"
local tbl = os.getenv("BENCH_TABLE") or "own_ship"
local f = assert(io.open(body_file, "rb"))
local body = f:read("*a")
f:close()

local threads = {}
local id = 0

function setup(thread)
  id = id + 1
  thread:set("tid", id)
  table.insert(threads, thread)
end

function init(args)
  n = 0
  ok2xx = 0
  other = 0
  headers = { ["Content-Type"] = "application/avro" }
end

function request()
  n = n + 1
  return wrk.format("POST", path .. "?table=" .. tbl .. "&dataset_id=r" .. round .. "-b" .. tid
                    .. "-" .. n, headers, body)
end

function response(status, hdrs, b)
  if status >= 200 and status < 300 then
    ok2xx = ok2xx + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local acked, refused = 0, 0
  for _, t in ipairs(threads) do
    acked = acked + t:get("ok2xx")
    refused = refused + t:get("other")
  end
  io.write(string.format("RESULT rps=%.1f p99_ms=%.2f acked=%d other=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(99) / 1000, acked, refused))
end
