-- secrets_canary.lua: paired with check_secrets.c canary_in_no_output. Every
-- credential here is echoed back by the mock (a 401 that repeats it, in one
-- form or another); nothing luact prints or stores may carry it. The key
-- of each kind is registered where luact reads it: OPENAI_API_KEY from the
-- environment, api_key from the options, Authorization from http headers.
-- arg[1]: "json" returns the results (for --json), "error" raises the LLM
-- error, "nil" returns nil and the error (both go to stderr).
local BASE = os.getenv("BASE")
local K_OPT = os.getenv("CANARY_OPT") -- not a credential name: only the option registers it
local K_HDR = os.getenv("CANARY_HDR")
local K_ENV = os.getenv("OPENAI_API_KEY")
local mode = arg[1] or "json"

-- Lua-visible strings must not carry a key either. A leak is printed with
-- the string, so the C side sees the canary on stdout and fails.
local function check(where, s)
  if type(s) ~= "string" then return end
  for _, k in ipairs({ K_ENV, K_OPT, K_HDR }) do
    if s:find(k, 1, true) or s:find(k:sub(1, 12), 1, true) then
      print("LEAK in Lua (" .. where .. "): " .. s)
    end
  end
end

local msgs, redacted = {}, 0
local function call(where, opts)
  opts.prompt, opts.retries = "hi", 0
  local r, msg, code = luact.llm.chat(opts)
  assert(not r, where .. ": the mock answers 401")
  check(where, msg)
  if msg:find("[REDACTED]", 1, true) then redacted = redacted + 1 end
  msgs[#msgs + 1] = where .. ": " .. code .. ": " .. msg
  return msg
end

-- The environment's key, echoed in five forms.
local m1 = call("json", { model = "openai:gpt-x", base_url = BASE .. "/json/v1" })
call("slash", { model = "openai:gpt-x", base_url = BASE .. "/slash/v1" })
call("percent", { model = "openai:gpt-x", base_url = BASE .. "/percent/v1" })
call("raw", { model = "openai:gpt-x", base_url = BASE .. "/raw/v1" })
call("prefix", { model = "openai:gpt-x", base_url = BASE .. "/prefix/v1" })
-- A key from the script's options, as Anthropic's x-api-key.
call("anthropic", { model = "anthropic:claude-x", base_url = BASE .. "/json", api_key = K_OPT })

-- The http tool with an Authorization header: the body echoes it. The
-- body is the script's data (it sent the key), but the journal and the
-- --json output get it only scrubbed.
local res = assert(luact.http.request{ url = BASE .. "/echo",
  headers = { Authorization = "Bearer " .. K_HDR } })
assert(res.status == 401)
assert(res.body:find(K_HDR, 1, true), "the mock echoes the header")

-- A ReAct run whose model call fails the same way: its reason goes to the
-- trace and the trajectory.
local r = luact.react{ model = "openai:gpt-x", base_url = BASE .. "/raw/v1", retries = 0,
  mode = "text", tools = {}, question = "Which key?", limits = { steps = 2 } }
check("react reason", r.reason)

if mode == "error" then error(m1, 0) end
if mode == "nil" then return nil, m1 end
print("lua-checked " .. #msgs .. " errors, " .. redacted .. " redacted")
return { llm_errors = msgs, http_body = res.body, react = r }
