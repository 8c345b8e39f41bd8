-- agents/lookup.lua: the peer benchmark's agent (../shared/bench/task.js):
-- one tool, lookup(key) -> "value-of-<key>"; the model asks for key-1..key-K
-- and then answers. Returns a function(opts) that runs one task and returns
-- the final answer (or nil, message).
local luact = require "luact"

local SYSTEM_PROMPT = "You are a benchmark agent. Use the lookup tool as instructed, then answer."
local TOOL_DESCRIPTION = "Look up the value stored under a key."

local lookup = luact.tool{
  name = "lookup",
  description = TOOL_DESCRIPTION,
  params = { type = "object", properties = { key = { type = "string" } }, required = { "key" } },
  fn = function(args) return "value-of-" .. args.key end,
}

local function prompt(steps)
  return string.format("Look up key-1 through key-%d with the lookup tool, one call each, then report all values.", steps)
end

-- The engine: luact.react in native tool-calling mode. The options are
-- built once per endpoint and shared by every run, as LangGraph's
-- createReactAgent is built once and invoked per task (the engine only
-- reads them).
local configs = {}
local function config(o)
  local key = table.concat({ o.base_url, o.steps, tostring(o.stream), tostring(o.on_step) }, "\0")
  local c = configs[key]
  if not c then
    c = {
      model = "openai:mock-gpt", base_url = o.base_url, api_key = "x",
      tools = { lookup }, mode = "native", instructions = SYSTEM_PROMPT, question = prompt(o.steps),
      limits = { steps = o.steps + 5 }, retries = 0, timeout = 60, stream = o.stream or nil,
      verbose = false, on_step = o.on_step,
    }
    configs[key] = c
  end
  return c
end

local function run_react(o)
  local r = luact.react(config(o))
  if r.status ~= "finished" then return nil, r.status .. ": " .. tostring(r.reason) end
  return r.answer
end

-- The same task as a hand loop on luact.llm.chat (no engine).
local TOOL_SPECS = { { name = "lookup", description = TOOL_DESCRIPTION, parameters = lookup.params } }
local function run_loop(o)
  local messages = { { role = "system", content = SYSTEM_PROMPT }, { role = "user", content = prompt(o.steps) } }
  for _ = 1, o.steps + 5 do
    local r, err = luact.llm.chat{ model = "openai:mock-gpt", base_url = o.base_url, api_key = "x",
      messages = messages, tools = TOOL_SPECS, retries = 0, timeout = 60, stream = o.stream or nil }
    if not r then return nil, err end
    if #r.tool_calls == 0 then return r.text end
    messages[#messages + 1] = { role = "assistant", content = r.text, tool_calls = r.tool_calls }
    for _, c in ipairs(r.tool_calls) do
      local v, e = lookup(c.arguments)
      messages[#messages + 1] = { role = "tool", tool_call_id = c.id, content = v or ("error: " .. e) }
    end
  end
  return nil, "no final answer"
end

return function(o)
  if o.mode == "loop" or not luact.react then return run_loop(o) end
  return run_react(o)
end
