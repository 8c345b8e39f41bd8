-- scripts/bench/durable/luact_durable.lua: the lookup task
-- (../shared/bench/task.js) as one durable luact run, for
-- scripts/durable-bench. luact run --store FILE runs it; its N tasks are N
-- concurrent agents (luact.react) in this one run, each journaling every
-- LLM call and tool call. lookup is declared idempotent, so each step's tool
-- call is a checkpoint the agent waits for: its intent is committed before
-- it runs and its result before the agent goes on (the LLM calls are pure:
-- committed in the same groups, never waited for).
--   luact run --store FILE luact_durable.lua --base-url URL --steps K --tasks T --concurrency C
--   luact run --store FILE luact_durable.lua --wait   (asks, and waits for a person)
local o = { steps = 5, tasks = 1, concurrency = 1 }
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "--wait" then o.wait = true
  elseif a:match("^%-%-") then
    o[a:sub(3):gsub("-", "_")] = tonumber(arg[i + 1]) or arg[i + 1]
    i = i + 1
  end
  i = i + 1
end
if o.wait then
  local order = luact.ask("Your order number?")
  return order
end

local SYSTEM_PROMPT = "You are a benchmark agent. Use the lookup tool as instructed, then answer."
local lookup = luact.tool{
  name = "lookup", description = "Look up the value stored under a key.", effect = "idempotent",
  params = { type = "object", properties = { key = { type = "string" } }, required = { "key" } },
  fn = function(args) return "value-of-" .. args.key end,
}
local cfg = {
  model = "openai:mock-gpt", base_url = o.base_url, api_key = "x", tools = { lookup }, mode = "native",
  instructions = SYSTEM_PROMPT, retries = 0, timeout = 60, verbose = false, limits = { steps = o.steps + 5 },
  question = string.format("Look up key-1 through key-%d with the lookup tool, one call each, then report all values.", o.steps),
}
local want = {}
for k = 1, o.steps do want[k] = "value-of-key-" .. k end
want = "DONE " .. table.concat(want, ",")
local list = {}
for k = 1, o.tasks do list[k] = k end
local first_error
local t0 = luact.now()
local oks = luact.map(list, function()
  local r = luact.react(cfg)
  if r.status == "finished" and r.answer == want then return 1 end
  first_error = first_error or (r.status .. ": " .. tostring(r.reason or r.answer))
  return 0
end, { concurrency = o.concurrency })
local wall = (luact.now() - t0) * 1000
local ok = 0
for _, v in ipairs(oks) do ok = ok + v end
print(luact.json.encode{ tasks = o.tasks, ok = ok, failed = o.tasks - ok, wall_ms = wall,
  first_error = first_error or luact.json.null, run = luact.run_id })
return ok == o.tasks and 0 or 1
