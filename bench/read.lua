-- wrk script for bench/read.sh.  BENCH_LIST names a file of lines
-- "path first last size": each request takes the next line (per thread,
-- round robin), with "Range: bytes=first-last" unless first is "-".  The
-- payload is the number of answers 2xx times the mean size of the lines:
-- every line is asked for as often as any other.

local list = {}
local total = 0
for line in io.lines(os.getenv("BENCH_LIST")) do
  local path, first, last, size = line:match("^(%S+) (%S+) (%S+) (%d+)$")
  table.insert(list, { path = path, first = first, last = last,
                       size = tonumber(size) })
  total = total + tonumber(size)
end
local mean = total / #list

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  i = 0
  ok = 0
  bad = 0
end

-- BENCH_PIPELINE=1: every request sends the whole list at once on its
-- connection (HTTP/1.1 pipelining), as one unit of work
local pipeline = os.getenv("BENCH_PIPELINE") == "1"
local batch

function request()
  if pipeline then
    if not batch then
      local parts = {}
      for _, e in ipairs(list) do
        local h = {}
        if e.first ~= "-" then
          h["Range"] = "bytes=" .. e.first .. "-" .. e.last
        end
        table.insert(parts, wrk.format("GET", e.path, h))
      end
      batch = table.concat(parts)
    end
    return batch
  end
  i = i % #list + 1
  local e = list[i]
  local h = {}
  if e.first ~= "-" then
    h["Range"] = "bytes=" .. e.first .. "-" .. e.last
  end
  return wrk.format("GET", e.path, h)
end

function response(status, headers, body)
  if status == 200 or status == 206 then
    ok = ok + 1
  else
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local p, b = 0, 0
  for _, t in ipairs(threads) do
    p = p + t:get("ok") * mean
    b = b + t:get("bad")
  end
  local s = summary.duration / 1e6
  io.write(string.format("RESULT rps=%.1f mbps=%.2f p99_ms=%.2f bad=%d\n",
    summary.requests / s, p / s / 1e6, latency:percentile(99) / 1000, b))
end
