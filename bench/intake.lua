-- wrk script for bench_intake: one new report per request, each with a fresh UUID.
-- __POINTS__, __KEY__ and __WARM_S__ are filled in by bench/bench_intake.py.
-- wrk's own latency figures count every request from the first, when all connections open
-- at once; this script times each request itself (the answer names its client_event_id) and
-- keeps only those started after the first __WARM_S__ seconds: the steady state.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local now_ts = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, now_ts)  -- CLOCK_MONOTONIC
  return tonumber(now_ts.tv_sec) * 1000000 + tonumber(now_ts.tv_nsec) / 1000
end

local points = {__POINTS__}
local key = "__KEY__"
local warm_us = __WARM_S__ * 1000000
local counter = 0
local threads = {}
local started = {}
local measure_from = nil
lat = {}
statuses = {}
first_us = 0
last_us = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  -- Each wrk thread gets its own seed: equal seeds would send equal keys (retries).
  math.randomseed(os.time() * 1000 + id * 7919)
  measure_from = now_us() + warm_us
end

local function uuid4()
  local t = {}
  for i = 1, 16 do t[i] = math.random(0, 255) end
  t[7] = (t[7] % 16) + 64
  t[9] = (t[9] % 64) + 128
  return string.format(
    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
    t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8],
    t[9], t[10], t[11], t[12], t[13], t[14], t[15], t[16])
end

request = function()
  counter = counter + 1
  local p = points[(counter % #points) + 1]
  local cid = uuid4()
  local t = now_us()
  if t >= measure_from then
    started[cid] = t
  end
  local body = string.format(
    '{"client_event_id":"%s","category":"0102","description":"bench",' ..
    '"location":{"lon":%.7f,"lat":%.7f},"accuracy_m":5}', cid, p[1], p[2])
  local headers = {["Content-Type"] = "application/json", ["X-API-Key"] = key}
  return wrk.format("POST", "/api/v1/events", headers, body)
end

response = function(status, headers, body)
  local cid = string.match(body, '"client_event_id":"([%x%-]+)"')
  local t0 = cid and started[cid]
  if t0 then
    local t = now_us()
    started[cid] = nil
    lat[#lat + 1] = t - t0
    statuses[status] = (statuses[status] or 0) + 1
    if first_us == 0 then first_us = t0 end
    last_us = t
  end
end

done = function(summary, latency, requests)
  local all = {}
  local total = {}
  local first, last = nil, nil
  for _, t in ipairs(threads) do
    for _, v in ipairs(t:get("lat")) do all[#all + 1] = v end
    for status, n in pairs(t:get("statuses")) do total[status] = (total[status] or 0) + n end
    local f, l = t:get("first_us"), t:get("last_us")
    if f > 0 and (first == nil or f < first) then first = f end
    if l > 0 and (last == nil or l > last) then last = l end
  end
  table.sort(all)
  local function pct(p)
    if #all == 0 then return 0 end
    return all[math.max(1, math.ceil(#all * p / 100))]
  end
  io.write(string.format("STEADY %d %.0f\n", #all, (first and last) and (last - first) or 0))
  for status, n in pairs(total) do io.write(string.format("STATUS %d %d\n", status, n)) end
  io.write(string.format("P50US %.0f\nP90US %.0f\nP99US %.0f\nMAXUS %.0f\n",
    pct(50), pct(90), pct(99), pct(100)))
end
