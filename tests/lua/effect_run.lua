-- effect_run.lua (check_effect.c): one run with every kind of effect. Its
-- returned text is what a user would see; COUNT (a global) says which tool
-- bodies really ran. Globals from the test: BASE (mock root URL), KEY,
-- PROMPT, SLOW ("a" or "b": which parallel branch sleeps), DESC (the pure
-- tool's description).
COUNT = { pure = 0, idem = 0, once = 0 }
local out = {}
local function log(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  out[#out + 1] = table.concat(t, " ")
end
local function chat(t)
  t.model = "openai:mock-gpt"; t.base_url = BASE .. "/v1"; t.api_key = KEY; t.retries = 0
  return luact.llm.chat(t)
end

local double = luact.tool{
  name = "double", description = DESC or "Doubles x.",
  params = { type = "object", properties = { x = { type = "number" } }, required = { "x" } },
  fn = function(a) COUNT.pure = COUNT.pure + 1; return { y = a.x * 2 } end,
}
local charge = luact.tool{
  name = "charge", description = "Charges an amount.", effect = "idempotent",
  params = { type = "object", properties = { amount = { type = "integer" } } },
  fn = function(a, ctx)
    COUNT.idem = COUNT.idem + 1
    local r, err = luact.http.request{ method = "POST", url = BASE .. "/charge",
      body = { amount = a.amount }, idempotency_key = ctx.idempotency_key }
    if not r then return nil, err end
    return { status = r.status, key = ctx.idempotency_key }
  end,
}
local send = luact.tool{
  name = "send", description = "Sends a letter.", effect = "at_most_once",
  fn = function() COUNT.once = COUNT.once + 1; return { sent = true } end,
}

local streamed = {}
local r = assert(chat{ messages = { { role = "user", content = PROMPT or "Hi" } },
  tools = { { name = "lookup", description = "Looks up.", parameters = { type = "object" } } },
  stream = function(d) if d.type == "text" then streamed[#streamed + 1] = d.text end end })
log("llm", r.text, #streamed, table.concat(streamed, "|"), r.usage.input, r.usage.output)
log("pure", assert(double{ x = 21 }).y)
local c = assert(charge{ amount = 5 })
log("idem", c.status, c.key)
log("once", assert(send{}).sent)
local h = assert(luact.http.request{ url = BASE .. "/items" })
log("http", h.status, h.json.n, h.headers["content-type"])
local t1 = luact.now()
log("now", string.format("%.6f", t1), luact.now() >= t1)
log("random", luact.random(1, 1000), luact.random(6), string.format("%.17g", luact.random()))
-- SLOW names the branch that finishes last: it waits (yielding) until the
-- other branch is done, so the order comes from synchronisation, not timers.
local done = {}
local function wait_for(other)
  for _ = 1, 100000 do if done[other] then return end luact.sleep(0) end
  error("branch " .. other .. " never finished")
end
local res = luact.parallel{
  a = function() if SLOW == "a" then wait_for("b") end
    local t = assert(chat{ messages = { { role = "user", content = "A" } } }).text
    done.a = true return t end,
  b = function() if SLOW == "b" then wait_for("a") end
    local t = assert(chat{ messages = { { role = "user", content = "B" } } }).text
    done.b = true return t end,
}
log("parallel", res.a, res.b)
return table.concat(out, "\n")
