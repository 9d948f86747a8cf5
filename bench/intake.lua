-- wrk script for bench_intake: one new report per request, each with a fresh UUID.
-- __POINTS__ and __KEY__ are filled in by bench/bench_intake.py.
local points = {__POINTS__}
local key = "__KEY__"
local counter = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init(args)
  -- Each wrk thread gets its own seed: equal seeds would send equal keys (retries).
  math.randomseed(os.time() * 1000 + id * 7919)
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
  local body = string.format(
    '{"client_event_id":"%s","category":"0102","description":"bench",' ..
    '"location":{"lon":%.7f,"lat":%.7f},"accuracy_m":5}', uuid4(), p[1], p[2])
  local headers = {["Content-Type"] = "application/json", ["X-API-Key"] = key}
  return wrk.format("POST", "/api/v1/events", headers, body)
end
