-- wrk script of bench/web.py: sends the requests of a file in turn, with the signed-in session's
-- cookie, counts every response whose status is not an expected one, and prints one result line.
--
--   BENCH_COOKIE='session=...' wrk -t 1 ... -s bench/web_wrk.lua URL -- REQUESTS_FILE 200[,303...]
--
-- (One wrk thread: each thread runs its own copy of this script and would send the same requests.)
--
-- REQUESTS_FILE: one request per line, "METHOD<TAB>PATH<TAB>BODY" (BODY form-encoded, may be empty).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local cookie = os.getenv("BENCH_COOKIE")
  requests = {}
  for line in io.lines(args[1]) do
    local method, path, body = line:match("^(%u+)\t([^\t]+)\t(.*)$")
    local headers = { Cookie = cookie }
    if body == "" then
      body = nil
    else
      headers["Content-Type"] = "application/x-www-form-urlencoded"
    end
    table.insert(requests, wrk.format(method, path, headers, body))
  end
  expected = {}
  for status in args[2]:gmatch("%d+") do
    expected[tonumber(status)] = true
  end
  sent = 0
  unexpected = 0
end

function request()
  sent = sent + 1
  return requests[(sent - 1) % #requests + 1]
end

function response(status, headers, body)
  if not expected[status] then
    unexpected = unexpected + 1
  end
end

function done(summary, latency, _requests)
  local bad = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("unexpected")
  end
  -- requests, errors, duration (us), p50 (us), p95 (us)
  io.write(string.format(
    "RESULT %d %d %d %d %d\n",
    summary.requests, bad, summary.duration, latency:percentile(50), latency:percentile(95)
  ))
end
