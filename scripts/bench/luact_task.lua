-- scripts/bench/luact_task.lua: luact's side of ../shared/bench (its README,
-- "Plugging in the project"). bench.sh appends:
--   --base-url URL --steps K --tasks T --concurrency C [--warmup W] [--stream]
-- Runs W warm-up tasks one at a time, then T tasks with at most C in flight,
-- timing only the second phase; prints one JSON line last on stdout; exits 0
-- only if every task was correct. With `luact run --workers N` each worker
-- runs its share and the totals are combined through luact.worker.
local o = { steps = 5, tasks = 1, concurrency = 1, warmup = 0, mode = os.getenv("LUACT_BENCH_MODE") or "react" }
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "--stream" then o.stream = true
  elseif a == "--" then -- separator left by PROJECT_RUN_CMD
  elseif a:match("^%-%-") then
    local key = a:sub(3):gsub("-", "_")
    local v = arg[i + 1]
    i = i + 1
    o[key] = tonumber(v) or v
  end
  i = i + 1
end
assert(o.base_url, "--base-url is required")

package.path = arg[0]:gsub("scripts/bench/[^/]*$", "agents/?.lua;") .. package.path
local run_task = require "lookup"
local expected = {}
for k = 1, o.steps do expected[k] = "value-of-key-" .. k end
expected = "DONE " .. table.concat(expected, ",")

local first_error
local function one()
  local ok, ans, err = pcall(run_task, o)
  if ok and ans == expected then return true end
  first_error = first_error or (ok and (ans and ("wrong answer: " .. tostring(ans)) or tostring(err)) or tostring(ans))
  return false
end

-- This worker's share of the tasks and the concurrency.
local W, id = luact.worker.count, luact.worker.id
local function share(n) return n // W + ((id <= n % W) and 1 or 0) end
local tasks, conc, warm = share(o.tasks), math.max(1, share(o.concurrency)), share(o.warmup)

local warm_failed = 0
for _ = 1, warm do if not one() then warm_failed = warm_failed + 1 end end

-- LUACT_BENCH_RAMP_S=s (not used by the bench): task k first waits
-- k/tasks * s, spreading the opening connections over s seconds. It shows
-- what the 10,000-agent connection burst costs (docs/BENCHMARKS.md).
local ramp = tonumber(os.getenv("LUACT_BENCH_RAMP_S") or "0") or 0
-- LUACT_BENCH_TRACE=path (not used by the bench): one line per timed task,
-- "<start> <end> <step 1> ... <step K+1>", seconds from the start of the
-- timed phase (path.<worker id> with several workers). A step's time is
-- when the engine recorded it, just after the model's answer (and the
-- tool call) of that round. It shows how long a burst of tasks takes to
-- get going and how each round spreads.
local trace_path = os.getenv("LUACT_BENCH_TRACE")
local trace, task_of = trace_path and {} or nil, {}
local t0
if trace then
  o.on_step = function()
    local row = trace[task_of[coroutine.running()]]
    row[#row + 1] = string.format("%.3f", luact.now() - t0)
  end
end
local list = {}
for k = 1, tasks do list[k] = k end
luact.worker.barrier()
t0 = luact.now()
local oks = (#list > 0) and luact.map(list, function(k)
  if ramp > 0 then luact.sleep(ramp * k / tasks) end
  if trace then
    task_of[coroutine.running()] = k
    trace[k] = { string.format("%.3f", luact.now() - t0) }
  end
  local r = one() and 1 or 0
  if trace then table.insert(trace[k], 2, string.format("%.3f", luact.now() - t0)) end
  return r
end, { concurrency = conc }) or {}
if trace then
  local f = assert(io.open(trace_path .. (W > 1 and ("." .. id) or ""), "w"))
  for k = 1, #trace do f:write(table.concat(trace[k], " "), "\n") end
  f:close()
end
local wall = (luact.now() - t0) * 1000
local ok = 0
for _, v in ipairs(oks) do ok = ok + v end

ok = math.tointeger(luact.worker.sum("ok", ok))
local total = math.tointeger(luact.worker.sum("tasks", tasks))
warm_failed = math.tointeger(luact.worker.sum("warm_failed", warm_failed))
wall = luact.worker.max("wall", wall)
if id == 1 then
  print(luact.json.encode{
    tasks = total, ok = ok, failed = total - ok, wall_ms = wall, warmup_failed = warm_failed,
    first_error = first_error or luact.json.null, version = "luact " .. luact.version,
    mode = o.mode == "loop" and "tools-loop" or "tools",
  })
end
return (ok == total and warm_failed == 0) and 0 or 1
