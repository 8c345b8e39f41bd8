-- examples/shopbot/chat.lua: ShopBot in the terminal.
--
--   luact chat examples/shopbot            (OPENAI_API_KEY=... for a real model)
--   examples/shopbot/run-offline.sh        (scripted model and customer)
--
-- Environment:
--   LUACT_MODEL           provider:model (default openai:gpt-4o-mini)
--   SHOPBOT_DATA          data directory (default examples/shopbot/data)
--   SHOPBOT_TODAY         the shop's "today", YYYY-MM-DD (default 2025-06-16)
--   SHOPBOT_SHIPPING_URL  the shipping API; unset: start build/shopbot-shipping
--   SHOPBOT_SHIPPING_BIN  where that binary is (default build/shopbot-shipping)
--   SHOPBOT_INPUTS        a file of customer lines, one per line: play them
--                         instead of reading the terminal (offline demo)
--   SHOPBOT_RUN_ID        the run id (idempotency keys derive from it)
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local shopbot = dofile(here .. "/shopbot.lua")
local data_dir = os.getenv("SHOPBOT_DATA") or (here .. "/data")
os.execute("mkdir -p '" .. data_dir:gsub("'", "'\\''") .. "'")

-- The shipping partner: given, or started here in the background; it
-- exits by itself when this process does (--watch-pid $PPID: the shell
-- io.popen starts is our child).
local shipping = os.getenv("SHOPBOT_SHIPPING_URL")
local shipping_pid
if not shipping then
  local bin = os.getenv("SHOPBOT_SHIPPING_BIN") or "build/shopbot-shipping"
  local p = io.popen(string.format("'%s' --db '%s/shipping.db' --background --watch-pid $PPID",
    bin, data_dir))
  local line = p and p:read("l")
  local pidline = p and p:read("l")
  if p then p:close() end
  local addr = line and line:match("^listening on (%S+)")
  if not addr then
    return nil, "cannot start the shipping service (" .. bin .. "); build it with cmake --build build " ..
      "or set SHOPBOT_SHIPPING_URL"
  end
  shipping = "http://" .. addr
  shipping_pid = pidline and pidline:match("pid (%d+)")
end

-- Customer input: scripted lines (echoed, so the transcript reads like a
-- chat) or the terminal. luact.ask (journaled input) when the runtime has it.
local scripted
local inputs_file = os.getenv("SHOPBOT_INPUTS")
if inputs_file then
  scripted = {}
  for line in io.lines(inputs_file) do
    if line:match("%S") and not line:match("^#") then scripted[#scripted + 1] = line end
  end
end
local next_input = 1
local function input(question)
  if scripted then
    local line = scripted[next_input]
    next_input = next_input + 1
    if line then io.write("customer> ", line, "\n") io.flush() end
    return line
  end
  if type(luact.ask) == "function" then return luact.ask("customer> ") end
  io.write("customer> ")
  io.flush()
  return io.read("l")
end

local function show(ev)
  if ev.kind == "ask" then
    io.write("\nshopbot> ", ev.text, "\n")
  elseif ev.kind == "user" or ev.kind == "cancelled" then
    -- already on screen (typed, or echoed by input; luact printed "(cancelled)")
  elseif ev.action == "finish" and not ev.refused then
    io.write("\nshopbot> ", ev.args.summary, "\n")
  else
    io.stderr:write(luact.workflow_format_event(ev), "\n")
  end
  io.flush()
end

local bot = shopbot.new {
  data_dir = data_dir, shipping_url = shipping,
  run_id = os.getenv("SHOPBOT_RUN_ID"),
}
io.write("shopbot> Hi, I'm ShopBot from Shop Example. How can I help?\n")
local first = input("How can I help?")
if not first then bot:close() return 0 end
local r = bot:run { input = input, message = first, on_event = show }
bot:close()
if shipping_pid then os.execute("kill " .. shipping_pid .. " 2>/dev/null") end
io.stderr:write(string.format("\n(%s in step %s: %d model calls, %d actions, %d refused, %d checks failed, " ..
  "%d tool retries; data in %s)\n", r.status, r.state, r.usage.llm_calls, r.usage.actions, r.usage.refused,
  r.usage.check_failures, r.usage.tool_retries, data_dir))
if r.status == "finished" or r.status == "input_closed" then return 0 end
return nil, r.reason
