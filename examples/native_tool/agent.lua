-- examples/native_tool/agent.lua: C functions as model tools.
-- Compiles mortgage.c into a shared library at run time (cc), declares two
-- of its functions with luact.tools.native (the JSON schemas come from the
-- C signatures, so a wrong argument type is refused before the C code
-- runs), then answers a question with a plain tool-calling loop over
-- luact.llm.chat. Without a configured model it calls the tools directly.
--
--   luact run examples/native_tool/agent.lua "Monthly payment on 250000 at 4.5% over 30 years?"
--
-- Offline: examples/native_tool/run-offline.sh (lc-mockllm plays the model).
-- With OPENAI_API_KEY set and no OPENAI_BASE_URL it talks to the real API
-- (model from LUACT_MODEL, default openai:gpt-4o-mini).

local question = arg[1] or "What is the monthly payment on 250000 at 4.5% over 30 years?"
local model = os.getenv("LUACT_MODEL") or "openai:gpt-4o-mini"
local here = (arg[0] or ""):match("^(.*)/[^/]*$") or "."

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Build the library into a scratch directory (LUACT_NATIVE_BUILD_DIR, or a
-- fresh temp dir that we remove afterwards).
local dir, own_dir = os.getenv("LUACT_NATIVE_BUILD_DIR"), false
if not dir or dir == "" then
  local p = assert(io.popen("mktemp -d 2>/dev/null || echo /tmp/luact-native-$$"))
  dir = p:read("l")
  p:close()
  own_dir = true
end
local lib = dir .. "/libmortgage.so"
local cc = os.getenv("CC") or "cc"
local cmd = string.format("%s -shared -fPIC -O2 -o %s %s -lm", cc, sh_quote(lib), sh_quote(here .. "/mortgage.c"))
if not os.execute(cmd) then return nil, "could not compile mortgage.c with: " .. cmd end

local tools = {
  luact.tools.native{
    lib = lib, symbol = "monthly_payment", signature = "double(double, double, int)",
    args = {
      { name = "principal", description = "Loan amount" },
      { name = "annual_rate", description = "Yearly interest rate in percent, e.g. 4.5" },
      { name = "years", description = "Term in whole years" },
    },
    description = "Monthly payment of an annuity loan, rounded to cents.",
  },
  luact.tools.native{
    lib = lib, symbol = "format_amount", signature = "int(string, double, buffer[64], len)",
    args = {
      { name = "currency", description = "ISO currency code, e.g. USD" },
      { name = "amount", description = "The amount to format" },
    }, -- len: the runtime passes the buffer's size, never the model

    description = "Formats an amount for people: 'USD 1,234.56'.",
    result = function(r) return r.buffers[1] end,
  },
}

local function finish(...)
  for _, t in ipairs(tools) do t.close() end
  os.remove(lib)
  if own_dir then os.remove(dir) end
  return ...
end

local by_name, specs = {}, {}
for _, t in ipairs(tools) do
  by_name[t.name] = t
  specs[#specs + 1] = { name = t.name, description = t.description, parameters = t.params }
end

io.write("user: ", question, "\n")

local function env(name) return (os.getenv(name) or "") ~= "" end
if not (env("OPENAI_BASE_URL") or env("OPENAI_API_KEY") or env("LUACT_MODEL")) then
  -- No model configured: show the tools working, and refusing bad input.
  io.write("(no model configured: calling the tools directly)\n")
  local pay = assert(by_name.monthly_payment{ principal = 250000, annual_rate = 4.5, years = 30 })
  io.write("  monthly_payment -> ", pay, "\n")
  io.write("  format_amount -> ", assert(by_name.format_amount{ currency = "USD", amount = pay }), "\n")
  local _, msg = by_name.monthly_payment{ principal = "a lot", annual_rate = 4.5, years = 30 }
  io.write("  monthly_payment with a string principal -> ", msg, "\n")
  return finish(0)
end

local messages = {
  { role = "system", content = "You answer loan questions. Compute with the tools, never in your head; " ..
    "format money with format_amount. Answer in one sentence." },
  { role = "user", content = question },
}

for step = 1, 6 do
  local r, err, code = luact.llm.chat{ model = model, messages = messages, tools = specs, temperature = 0 }
  if not r then return finish(nil, string.format("LLM call failed (%s): %s", code, err)) end
  if #r.tool_calls == 0 then
    io.write("assistant: ", r.text or "", "\n")
    return finish(0)
  end
  messages[#messages + 1] = { role = "assistant", content = r.text, tool_calls = r.tool_calls }
  for _, c in ipairs(r.tool_calls) do
    local tool = by_name[c.name]
    local res, msg
    if tool then res, msg = tool(c.arguments) else msg = "unknown tool " .. c.name end
    local content = res ~= nil and res or { error = msg }
    io.write(string.format("  tool %s(%s) -> %s\n", c.name, c.arguments_json, luact.json.encode(content)))
    messages[#messages + 1] = { role = "tool", tool_call_id = c.id, name = c.name, content = content }
  end
end
return finish(nil, "no answer after 6 steps")
