-- scripts/serve-bench/agents/lookup.lua: the bench task (../shared/bench's
-- task.js) as a served agent: luact.react, native tool calls, one tool
-- lookup(key) -> "value-of-<key>", against the mock LLM at $MOCK_URL. The
-- input is LangGraph's ({messages = {{role =, content =}}}), so the driver
-- sends both servers the same body; the result is LangGraph's too (the
-- messages, the last one the answer).
local lookup = luact.tool{
  name = "lookup",
  description = "Look up the value stored under a key.",
  params = { type = "object", properties = { key = { type = "string" } }, required = { "key" } },
  fn = function(args) return "value-of-" .. args.key end,
}
local base = os.getenv("MOCK_URL")

return function(input)
  local q = input.messages[#input.messages].content
  local r = luact.react{
    model = "openai:mock-gpt", base_url = base, api_key = "x", tools = { lookup },
    mode = "native", instructions = "You are a benchmark agent. Use the lookup tool as instructed, then answer.",
    question = q, limits = { steps = 15 }, retries = 0, timeout = 60, verbose = false,
  }
  if r.status ~= "finished" then error(r.status .. ": " .. tostring(r.reason)) end
  return { messages = { { role = "user", content = q }, { role = "assistant", content = r.answer } } }
end
