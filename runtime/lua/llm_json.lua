-- llm_json.lua: luact.llm.json{schema=, ...}: structured output. Asks for
-- JSON that fits a JSON schema (the provider's own JSON-schema mode, which
-- the adapters map from response_format = {schema=}; or, with
-- native_schema = false, plain JSON mode and the schema in the
-- instructions), validates the reply with luact.schema and an optional Lua
-- check, and asks again with the errors a bounded number of times.
local luact, check_opts = ...

local json = luact.json

local OWN = { schema = true, repairs = true, validate = true, schema_name = true, native_schema = true }

-- Models wrap JSON in ``` fences now and then even in JSON mode.
-- Linear in the reply's length: a lazy pattern followed by a blank run
-- is quadratic on a reply that is mostly blanks.
local function strip_fences(s)
  local open_end = select(2, s:find("^%s*```[%w]*[ \t\r]*\n"))
  if not open_end then return s end
  local close = s:find("```[ \t\r\n]*$", open_end + 1)
  if not close then return s end
  return s:sub(open_end + 1, close - 1)
end

--- luact.llm.json{schema = <JSON schema>, repairs = 2, validate =
-- function(value) -> true | nil, message, schema_name = "answer",
-- native_schema = true, ...every luact.llm.chat option}
-- -> value, info{attempts=, response=, usage=} | nil, message, "invalid_json" |
--    "schema" | <the chat error code>, info{attempts=, errors={...}, usage=}
-- usage = {input=, output=} sums every attempt's tokens (a re-asked reply
-- costs each attempt).
function luact.llm.json(opts)
  if type(opts) ~= "table" then error("luact.llm.json: expected a table {schema=, model=, prompt=|messages=}", 2) end
  if type(opts.schema) ~= "table" then error("luact.llm.json: 'schema' must be a table (a JSON schema)", 2) end
  local repairs = opts.repairs or 2
  if math.type(repairs) ~= "integer" or repairs < 0 then error("luact.llm.json: 'repairs' must be an integer >= 0", 2) end
  if opts.validate ~= nil and type(opts.validate) ~= "function" then
    error("luact.llm.json: 'validate' must be a function(value) -> true | nil, message", 2)
  end
  local v, serr = luact.schema.compile(opts.schema)
  if not v then error("luact.llm.json: 'schema' is not a valid JSON schema: " .. tostring(serr), 2) end
  if opts.response_format ~= nil then error("luact.llm.json: give 'schema', not 'response_format'", 2) end
  local bad = check_opts(opts, "luact.llm.json")
  if bad then error(bad, 2) end

  local req = {}
  for k, val in pairs(opts) do if not OWN[k] then req[k] = val end end
  local messages = {}
  if opts.system then messages[#messages + 1] = { role = "system", content = opts.system } end
  for _, m in ipairs(opts.messages or {}) do messages[#messages + 1] = m end
  if opts.prompt then messages[#messages + 1] = { role = "user", content = opts.prompt } end
  if #messages == 0 then error("luact.llm.json: give 'prompt' or 'messages'", 2) end
  req.system, req.prompt = nil, nil

  local schema_text = json.encode(opts.schema)
  if opts.native_schema == false then
    -- Providers without a schema mode: plain JSON mode, the schema in words.
    req.response_format = "json"
    table.insert(messages, 1, { role = "system", content =
      "Reply with only a JSON value (no prose, no code fences) that fits this JSON schema:\n" .. schema_text })
  else
    req.response_format = { schema = opts.schema, name = opts.schema_name or "answer" }
  end

  local errors = {}
  local kind
  local usage = { input = 0, output = 0 }
  for attempt = 1, repairs + 1 do
    req.messages = messages
    local r, err, code, info = luact.llm.chat(req)
    if not r then
      return nil, err, code, { attempts = attempt, errors = errors, info = info, usage = usage }
    end
    local u = r.usage or {}
    usage.input = usage.input + (tonumber(u.input) or 0)
    usage.output = usage.output + (tonumber(u.output) or 0)
    local text = r.text or ""
    local value, derr = json.decode(strip_fences(text))
    local problem
    if value == nil and derr then
      kind, problem = "invalid_json", "the reply is not valid JSON: " .. tostring(derr)
    else
      local ok, verr = v:validate(value)
      if not ok then
        kind, problem = "schema", "the reply does not fit the schema:\n" .. verr
      elseif opts.validate then
        local good, why = opts.validate(value)
        if not good then kind, problem = "schema", "the reply is not acceptable: " .. tostring(why or "rejected") end
      end
    end
    if not problem then return value, { attempts = attempt, response = r, errors = errors, usage = usage } end
    errors[#errors + 1] = problem
    messages = { table.unpack(messages) }
    messages[#messages + 1] = { role = "assistant", content = text }
    messages[#messages + 1] = { role = "user", content =
      "That reply was rejected: " .. problem ..
      "\nReply again with only the corrected JSON, fitting this schema:\n" .. schema_text }
  end
  return nil, string.format("no valid JSON after %d attempts; last problem: %s", repairs + 1, errors[#errors]),
    kind, { attempts = repairs + 1, errors = errors, usage = usage }
end
