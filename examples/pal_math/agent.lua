-- examples/pal_math/agent.lua: arithmetic word problems solved with PAL
-- (Gao et al. 2022): the model writes a Lua program whose reasoning is in
-- comments and named variables; luact runs it in the sandbox and the
-- program's value is the answer. A program that fails goes back to the
-- model with the error, for at most two repairs.
--
--   luact run examples/pal_math/agent.lua ["your own word problem"]
--   luact run --json --trace run.jsonl examples/pal_math/agent.lua
--
-- Offline, run-offline.sh points it at lc-mockllm (replies scripted in
-- mock.json; the train-ticket program has a bug, so the repair path
-- shows). With OPENAI_API_KEY set and no OPENAI_BASE_URL it talks to the
-- real API (model from LUACT_MODEL, default openai:gpt-4o-mini).
-- Progress goes to stderr, so that stdout carries only the --json result.

local model = os.getenv("LUACT_MODEL") or "openai:gpt-4o-mini"

-- GSM8K-style problems, with the answers to check the programs against.
local problems = {
  { question = "A bakery bakes 24 muffins on each tray and bakes 7 trays on Saturday. "
      .. "It sells 150 muffins and gives a third of the muffins that remain to a shelter. "
      .. "How many muffins does the bakery have left?", expected = 12 },
  { question = "Maya reads 18 pages of her book on Monday and twice as many pages on Tuesday. "
      .. "The book has 120 pages. How many pages does she still have to read?", expected = 66 },
  { question = "A train ticket costs $12.50 for an adult and $7.25 for a child. A family of "
      .. "2 adults and 3 children buys tickets and pays with a $60 bill. How much change, "
      .. "in dollars, do they get?", expected = 13.25 },
  { question = "Tom has $40 and saves $15 every week. After how many weeks will he have "
      .. "at least $200 for the first time?", expected = 11 },
}
if arg[1] then problems = { { question = arg[1] } } end

local function solve(p, i)
  local r = luact.pal{
    model = model,
    question = p.question,
    temperature = 0,
    repairs = 2,
    sandbox = { instructions = 1000000, time = 1, memory = 8 * 1024 * 1024 },
    verbose = false, -- problems run concurrently: one summary line each below
  }
  local correct
  if p.expected ~= nil then
    correct = r.status == "finished" and type(r.answer) == "number"
      and math.abs(r.answer - p.expected) < 1e-9
  end
  local trail = {}
  for k, a in ipairs(r.attempts) do
    trail[k] = a.status == "ok" and "ok" or (a.status .. ": " .. tostring(a.error))
  end
  io.stderr:write(string.format("%d. %s\n   -> %s  [%s; attempts: %s]%s\n", i,
    p.question, tostring(r.answer), r.status, table.concat(trail, " | "),
    correct == nil and "" or (correct and "  correct" or ("  WRONG, expected " .. p.expected))))
  return {
    question = p.question,
    answer = r.answer,
    expected = p.expected,
    correct = correct,
    status = r.status,
    reason = r.reason,
    attempts = #r.attempts,
    program = r.attempts[#r.attempts] and r.attempts[#r.attempts].code,
    tokens = r.usage.total,
  }
end

local results = luact.map(problems, solve)
return results
