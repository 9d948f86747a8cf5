-- wrk script for the burst test of bench_intake: reports with deterministic ids, paced.
-- __POINTS__, __KEY__, __SALT__ and __DELAY_MS__ are filled in by bench/bench_intake.py.
-- Ids are SALT-THREAD-4000-8000-COUNTER, so the bench can retry every report it minted
-- (the same id and body, as a tablet does) and count what was stored.
local points = {__POINTS__}
local key = "__KEY__"
local salt = __SALT__
local delay_ms = __DELAY_MS__
local threads = {}
counter = 0
counts = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  counts = {}
end

function delay()
  return delay_ms
end

request = function()
  counter = counter + 1
  local p = points[(counter % #points) + 1]
  local cid = string.format("%08x-%04x-4000-8000-%012x", salt, id, counter)
  local body = string.format(
    '{"client_event_id":"%s","category":"0102","description":"burst",' ..
    '"location":{"lon":%.7f,"lat":%.7f},"accuracy_m":5}', cid, p[1], p[2])
  local headers = {["Content-Type"] = "application/json", ["X-API-Key"] = key}
  return wrk.format("POST", "/api/v1/events", headers, body)
end

response = function(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

done = function(summary, latency, requests)
  local total = {}
  for i, t in ipairs(threads) do
    io.write(string.format("MINTED %d %d\n", i, t:get("counter")))
    for status, n in pairs(t:get("counts")) do
      total[status] = (total[status] or 0) + n
    end
  end
  for status, n in pairs(total) do
    io.write(string.format("STATUS %d %d\n", status, n))
  end
  io.write(string.format("P99US %d\n", latency:percentile(99)))
  io.write(string.format("P50US %d\n", latency:percentile(50)))
end
