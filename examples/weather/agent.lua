-- examples/weather/agent.lua: a tool-using agent on luact's LLM client.
-- The model may call two declared tools; their arguments are checked
-- against the schemas before the code runs, the two lookups run in
-- parallel, and the answer streams to the terminal as it is generated.
--
--   luact run examples/weather/agent.lua "Should I cycle in Oslo or Bergen tomorrow?"
--
-- Offline, scripts/demo points it at lc-mockllm (scripted replies in
-- mock.json). With OPENAI_API_KEY set and no OPENAI_BASE_URL it talks to
-- the real API (model from LUACT_MODEL, default openai:gpt-4o-mini).

local question = arg[1] or "Should I cycle in Oslo or Bergen tomorrow?"
local model = os.getenv("LUACT_MODEL") or "openai:gpt-4o-mini"

-- A small local "weather service" so the example needs no network.
local FORECAST = {
  oslo   = { temp_c = 4, rain_mm = 0.0, wind_ms = 3 },
  bergen = { temp_c = 7, rain_mm = 11.5, wind_ms = 9 },
}

local tools = {
  luact.tool{
    name = "get_forecast",
    description = "Tomorrow's forecast for a Norwegian city.",
    params = {
      type = "object",
      properties = { city = { type = "string", description = "City name" } },
      required = { "city" },
      additionalProperties = false,
    },
    fn = function(args)
      local f = FORECAST[args.city:lower()]
      if not f then return { error = "no forecast for " .. args.city } end
      return f
    end,
  },
  luact.tool{
    name = "cycling_advice",
    description = "Rates cycling conditions from a forecast (0 = stay home, 10 = perfect).",
    params = {
      type = "object",
      properties = {
        rain_mm = { type = "number", minimum = 0 },
        wind_ms = { type = "number", minimum = 0 },
      },
      required = { "rain_mm", "wind_ms" },
    },
    fn = function(a) return { score = math.max(0, 10 - a.rain_mm // 2 - a.wind_ms // 2) } end,
  },
}

local by_name, specs = {}, {}
for _, t in ipairs(tools) do
  by_name[t.name] = t
  specs[#specs + 1] = { name = t.name, description = t.description, parameters = t.params }
end

local messages = {
  { role = "system", content = "You help people decide whether to cycle. Use the tools; answer in one or two sentences." },
  { role = "user", content = question },
}
io.write("user: ", question, "\n")

for step = 1, 6 do
  local streamed = false
  local r, err, code = luact.llm.chat{
    model = model, messages = messages, tools = specs, temperature = 0,
    stream = function(d)
      if d.type == "text" then
        if not streamed then io.write("assistant: "); streamed = true end
        io.write(d.text); io.flush()
      end
    end,
  }
  if not r then return nil, string.format("LLM call failed (%s): %s", code, err) end
  if streamed then io.write("\n") end
  if #r.tool_calls == 0 then
    io.write(string.format("done in %d steps (%d tokens in, %d out)\n", step, r.usage.input, r.usage.output))
    return 0
  end
  messages[#messages + 1] = { role = "assistant", content = r.text, tool_calls = r.tool_calls }
  -- Every call the model asked for, concurrently; results go back in order.
  local calls = {}
  for i, c in ipairs(r.tool_calls) do
    calls[i] = function()
      local tool = by_name[c.name]
      if not tool then return { error = "unknown tool " .. c.name } end
      local res, msg = tool(c.arguments)
      return res or { error = msg }
    end
  end
  local results = luact.parallel(calls)
  for i, c in ipairs(r.tool_calls) do
    io.write(string.format("  tool %s(%s) -> %s\n", c.name, c.arguments_json, luact.json.encode(results[i])))
    messages[#messages + 1] = { role = "tool", tool_call_id = c.id, name = c.name, content = results[i] }
  end
end
return nil, "no answer after 6 steps"
