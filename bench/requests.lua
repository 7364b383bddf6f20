-- wrk script: replay pre-signed requests, optionally at a fixed rate, and dump the results.
--
-- Arguments (after `--`): <request file> [<rate per second, 0 = as fast as possible>]
-- Environment: BENCH_WRK_OUT, the JSON file that done() writes.
--
-- The request file is written by bench/load.py: "<count>\n", then for each
-- request "<length>\n<raw HTTP request>". Every request carries its own
-- webhook id and signature; signing is done in Python beforehand, so this
-- script only hands out strings. Past the end it starts again from the first
-- request and counts a wrap (the accounting then expects duplicates).
--
-- Rate limiting: wrk (unlike wrk2) has no open-loop mode. delay() is called
-- before each request on a connection; here it claims the next slot of one
-- schedule shared by all the thread's connections (slot k at start + k/rate)
-- and waits until it. Requests therefore leave at the target rate whatever
-- the latency, as long as a connection is free; when none is, the slot is
-- sent late and counted in `late`, which says how much coordinated omission
-- the latency figures may hide. wrk measures latency from the write, not from
-- the slot, and its timers have 1 ms resolution.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local now_ts = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now_ts)
  return tonumber(now_ts.tv_sec) * 1000 + tonumber(now_ts.tv_nsec) / 1e6
end

local requests = {}
local count = 0
local index = 0
sent = 0
wraps = 0
late = 0
local interval_ms = 0
local next_slot = nil

function init(args)
  local file = assert(io.open(args[1], "rb"))
  local data = file:read("*a")
  file:close()
  local newline = data:find("\n", 1, true)
  local total = tonumber(data:sub(1, newline - 1))
  local position = newline + 1
  for i = 1, total do
    local stop = data:find("\n", position, true)
    local length = tonumber(data:sub(position, stop - 1))
    requests[i] = data:sub(stop + 1, stop + length)
    position = stop + 1 + length
  end
  count = total
  local rate = tonumber(args[2] or "0")
  if rate > 0 then
    interval_ms = 1000 / rate
    -- delay is a global only in rate-limited runs: wrk skips the call otherwise.
    delay = function()
      local now = now_ms()
      if next_slot == nil then
        next_slot = now
      end
      local slot = next_slot
      next_slot = next_slot + interval_ms
      if slot < now - 1 then
        late = late + 1
        return 0
      end
      return math.floor(slot - now)
    end
  end
end

-- wrk calls request() once on the first thread before the run to check the
-- request's shape; that call must neither count nor use up a request.
peek_first = false

function request()
  if peek_first then
    peek_first = false
    return requests[1]
  end
  index = index + 1
  if index > count then
    index = 1
    wraps = wraps + 1
  end
  sent = sent + 1
  return requests[index]
end

local threads = {}

function setup(thread)
  -- setup() runs in wrk's main Lua state, before the thread's init().
  if #threads == 0 then
    thread:set("peek_first", true)
  end
  table.insert(threads, thread)
end

function done(summary, latency, _)
  local total_sent, total_wraps, total_late = 0, 0, 0
  for _, thread in ipairs(threads) do
    total_sent = total_sent + thread:get("sent")
    total_wraps = total_wraps + thread:get("wraps")
    total_late = total_late + thread:get("late")
  end
  local out = assert(io.open(assert(os.getenv("BENCH_WRK_OUT")), "w"))
  local errors = summary.errors
  out:write(string.format(
    '{"duration_us": %d, "requests": %d, "sent": %d, "wraps": %d, "late": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": [',
    summary.duration, summary.requests, total_sent, total_wraps, total_late,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
  -- The whole histogram at 1 us resolution: [value, count] pairs, values ascending.
  for i = 1, #latency do
    local value, hits = latency(i)
    if i > 1 then
      out:write(",")
    end
    out:write(string.format("[%d,%d]", value, hits))
  end
  out:write("]}\n")
  out:close()
end
