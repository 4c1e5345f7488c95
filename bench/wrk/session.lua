-- session.lua: wrk script of run.sh. Sends GET wrk.path with the Cookie
-- header values listed one a line in the file named by the first script
-- argument (wrk ... -s session.lua URL -- cookies.txt), round-robin, each
-- thread starting at its own place; with no file or an empty one (the
-- "new" workload), no cookie. Prints one JSON line when done, which run.sh
-- collects.

local threads = {}
local nthreads = 0

function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
  table.insert(threads, thread)
end

local cookies = {}
local i = 0

function init(args)
  local path = args[1]
  if path and path ~= "" then
    for line in io.lines(path) do
      if line ~= "" then cookies[#cookies + 1] = line end
    end
  end
  if #cookies > 0 then
    i = (tid * 7919) % #cookies
  end
end

function request()
  if #cookies == 0 then
    return wrk.format("GET", nil, {}, nil)
  end
  i = i + 1
  if i > #cookies then i = 1 end
  return wrk.format("GET", nil, { ["Cookie"] = cookies[i] }, nil)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"rps":%.1f,"bytes":%d,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6), summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
