-- examples/research/agent.lua: a research agent that fans out.
-- 1. A planner call splits the question into sub-questions (JSON).
-- 2. luact.map answers them in parallel (at most 3 at a time): each is a
--    small tool-calling loop whose one tool reads a local document library
--    (luact.tools.files, confined to corpus/).
-- 3. An editor call merges the findings into one answer.
--
--   luact run examples/research/agent.lua "Is a heat pump a good choice for a house in a cold climate?"
--
-- Offline: examples/research/run-offline.sh (lc-mockllm plays the model).
-- With OPENAI_API_KEY set and no OPENAI_BASE_URL it talks to the real API
-- (model from LUACT_MODEL, default openai:gpt-4o-mini).

local question = arg[1] or "Is a heat pump a good choice for a house in a cold climate?"
local model = os.getenv("LUACT_MODEL") or "openai:gpt-4o-mini"
local here = (arg[0] or ""):match("^(.*)/[^/]*$") or "."
local MAX_SUB, CONCURRENCY = 4, 3

local function env(name) return (os.getenv(name) or "") ~= "" end
if not (env("OPENAI_API_KEY") or env("OPENAI_BASE_URL")) then
  return nil, "no model configured: set OPENAI_API_KEY, or run examples/research/run-offline.sh"
end

local library = luact.tools.files{
  root = here .. "/corpus", name = "library", max_bytes = 16 * 1024,
  description = "A library of notes on residential heat pumps. action 'list' with path '.' " ..
    "shows the files; action 'read' returns one file's text.",
}
local tool_specs = { { name = library.name, description = library.description, parameters = library.params } }

local function chat(opts)
  opts.model, opts.temperature = model, 0
  local r, err, code = luact.llm.chat(opts)
  if not r then error(string.format("LLM call failed (%s): %s", code, err), 0) end
  return r
end

-- 1. Plan.
local plan = chat{
  system = "You are a research planner. Split the user's question into 2 to 4 self-contained " ..
    "sub-questions that can be researched independently. Reply with JSON only: " ..
    "{\"sub_questions\": [\"...\"]}",
  prompt = question,
  response_format = "json",
}
local ok, decoded = pcall(luact.json.decode, plan.text or "")
local subs = {}
for _, q in ipairs(ok and type(decoded) == "table" and decoded.sub_questions or {}) do
  if type(q) == "string" and #subs < MAX_SUB then subs[#subs + 1] = q end
end
if #subs == 0 then subs = { question } end
io.write("question: ", question, "\n")
for i, q in ipairs(subs) do io.write(string.format("  sub-question %d: %s\n", i, q)) end

-- 2. Research each sub-question, in parallel.
local function research(sub, i)
  local messages = {
    { role = "system", content = "You are a research assistant with a document library. " ..
      "Use the library tool to find the facts, then answer the sub-question in two or three " ..
      "sentences and name the file(s) you used." },
    { role = "user", content = sub },
  }
  for _ = 1, 6 do
    local r = chat{ messages = messages, tools = tool_specs }
    if #r.tool_calls == 0 then return { question = sub, answer = r.text or "" } end
    messages[#messages + 1] = { role = "assistant", content = r.text, tool_calls = r.tool_calls }
    for _, c in ipairs(r.tool_calls) do
      local res, msg
      if c.name == library.name then res, msg = library(c.arguments) else msg = "unknown tool " .. c.name end
      io.write(string.format("  [%d] %s(%s) -> %s\n", i, c.name, c.arguments_json,
        res and "ok" or ("error: " .. msg)))
      messages[#messages + 1] = { role = "tool", tool_call_id = c.id, name = c.name,
        content = res ~= nil and res or { error = msg } }
    end
  end
  return { question = sub, answer = "(no answer after 6 steps)" }
end

local findings = luact.map(subs, research, { concurrency = CONCURRENCY })
for i, f in ipairs(findings) do io.write(string.format("  finding %d: %s\n", i, f.answer)) end

-- 3. Merge.
local notes = {}
for i, f in ipairs(findings) do notes[i] = string.format("%d. %s\n%s", i, f.question, f.answer) end
local final = chat{
  system = "You are the editor. Merge the research findings into one short, direct answer " ..
    "to the question (at most five sentences). Keep the numbers and cite the files.",
  prompt = "Question: " .. question .. "\n\nFindings:\n" .. table.concat(notes, "\n\n"),
}
io.write("answer: ", final.text or "", "\n")
library.close()
return 0
