-- tool.lua: luact.tool{...}: a declared action with a JSON schema, an
-- effect class and a timeout. Declaring checks every field with its own
-- message; calling validates the arguments before fn runs and checks that
-- the result can go back to a model (JSON-serialisable).
local luact, check_opts = ...

local json = luact.json
local EFFECTS = { pure = true, idempotent = true, at_most_once = true }
local effect_run = luact._effect_run -- luact.effect without its checks
luact._effect_run = nil
local effect_run_noctx = luact._effect_run_noctx -- the same, no ctx made when unjournaled
luact._effect_run_noctx = nil
local encodable = json._encodable
json._encodable = nil
local timeout = luact.timeout
-- The schema each tool's effect records as its version, made once per tool
-- (again if the tool's description or params were replaced).
local schemas = setmetatable({}, { __mode = "k" })

-- A model needs the message, not our stack: drop the traceback the
-- scheduler adds to task errors. It goes to a model and into the journal,
-- which take UTF-8 text: each byte that starts no valid sequence (a
-- message cut mid-character by a C "%.200s") becomes U+FFFD.
local function clean(msg)
  local s = tostring(msg):gsub("\nstack traceback:.*$", "")
  if utf8.len(s) then return s end
  local out, i = {}, 1
  while true do
    local n, bad = utf8.len(s, i)
    if n then break end
    out[#out + 1] = s:sub(i, bad - 1) .. "\u{FFFD}"
    i = bad + 1
  end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

local Tool = {}
Tool.__index = Tool
Tool.__name = "luact.Tool"

local function field_error(name, field, msg)
  error(string.format("luact.tool%s: '%s' %s", name and ("(" .. name .. ")") or "", field, msg), 3)
end

local function schema_of(tool)
  local s = schemas[tool]
  if not s or s.description ~= tool.description or s.params ~= tool.params then
    s = { description = tool.description, params = tool.params }
    schemas[tool] = s
  end
  return s
end

local run_effect -- Tool:_run in the order effect_run calls it: (ectx, tool, args, ctx)
local settle -- run_effect's end: fn's pcall results to the call's results

--- Calls the tool: validate, run under its timeout, check the result.
-- Returns the result, or nil, message, code with code one of
-- "invalid_arguments", "tool_error", "timeout", "bad_result".
function Tool:call(args, ctx)
  if args == nil then args = {} end
  if self.validator then
    local ok, msg = self.validator(args)
    if not ok then
      return nil, string.format("invalid arguments for %s: %s", self.name, msg), "invalid_arguments"
    end
  end
  -- One journaled effect: recorded, or answered from the journal on replay
  -- (docs/journal.md); the tool's schema and description are its version.
  -- _noctx: the fn (an MCP tool's body, mcp.lua) that never reads its
  -- ctx, while it is still the tool's fn.
  local run = self._noctx ~= nil and self._noctx == self.fn and effect_run_noctx or effect_run
  return run("tool", self.name, args, self.effect, schema_of(self), run_effect, self, args, ctx)
end

-- (run_effect itself, not a method called from it: one Lua call less per
-- tool call; Tool:_run stays for callers of the method.)
function run_effect(ectx, self, args, ctx)
  -- fn gets the effect's ctx ({idempotency_key =, effect_id =}; {} without
  -- a journal), or the caller's ctx, plus the effect's key and id unless
  -- it brings its own key. ectx is this call's own table: it can take the
  -- caller's fields, and its key is derived only when fn reads it.
  if ctx == nil then
    ctx = ectx -- nil under _noctx unjournaled: that fn never reads it
  elseif ectx and not ctx.idempotency_key and ectx.effect_id ~= nil then
    for k, v in pairs(ctx) do
      if k ~= "idempotency_key" and k ~= "effect_id" then ectx[k] = v end
    end
    ctx = ectx
  end
  local fn = self.fn
  if type(fn) ~= "function" then -- a callable table
    local callable = fn
    fn = function(a, c) return callable(a, c) end
  end
  -- _direct (an MCP tool's, mcp.lua): timeout's stand-in that runs a call
  -- which is one request under that request's own deadline, no child task.
  return settle(self, pcall(self._direct or timeout, self.timeout, fn, args, ctx))
end

-- What a call of fn under pcall comes to: its result, checked, or nil,
-- message, code. (Tool._settle: an MCP tool's C path, l_mcp.c, ends
-- through it too when the answer is not its one plain case.)
function settle(self, ok, res, e2, e3)
  if not ok then
    return nil, string.format("tool %s failed: %s", self.name, clean(res)), "tool_error"
  end
  if res == nil and e3 == "timeout" then
    return nil, string.format("tool %s timed out after %g s", self.name, self.timeout), "timeout"
  end
  if res == nil and e2 ~= nil then
    return nil, string.format("tool %s failed: %s", self.name, clean(e2)), "tool_error"
  end
  -- Can it go back to a model? Checked, not encoded: luact.react encodes
  -- it once when it hands it over (a string needs only a UTF-8 check).
  if res ~= nil then
    local can, err = encodable(res)
    if not can then
      return nil, string.format("tool %s returned a value that cannot be sent to the model: %s",
        self.name, err), "bad_result"
    end
  end
  return res
end

Tool._settle = settle

function Tool:_run(args, ctx, ectx) return run_effect(ectx, self, args, ctx) end

Tool.__call = function(self, args, ctx) return self:call(args, ctx) end

--- luact.tool{name, description, params = <JSON schema>, fn,
--   effect = "pure" | "idempotent" | "at_most_once", timeout = seconds}
function luact.tool(spec)
  if type(spec) ~= "table" then error("luact.tool: expected a table {name=, description=, params=, fn=}", 2) end
  local bad = check_opts(spec, "luact.tool")
  if bad then error(bad, 2) end
  local name = spec.name
  if type(name) ~= "string" or not name:match("^[%a_][%w_%-]*$") or #name > 64 then
    field_error(nil, "name", "must be 1-64 letters, digits, '_' or '-', starting with a letter")
  end
  if name == "finish" then field_error(name, "name", "is reserved for the final answer") end
  if spec.description ~= nil and type(spec.description) ~= "string" then
    field_error(name, "description", "must be a string")
  end
  local params = spec.params or spec.parameters or { type = "object", properties = {} }
  if type(params) ~= "table" then field_error(name, "params", "must be a JSON schema table") end
  if params.type ~= nil and params.type ~= "object" then
    field_error(name, "params", "must describe an object (type = \"object\")")
  end
  if type(spec.fn) ~= "function" and not (type(spec.fn) == "table" and getmetatable(spec.fn)
      and getmetatable(spec.fn).__call) then
    field_error(name, "fn", "must be a function")
  end
  local effect = spec.effect or "pure"
  if not EFFECTS[effect] then field_error(name, "effect", "must be pure, idempotent or at_most_once") end
  local timeout = spec.timeout or 60
  if type(timeout) ~= "number" or not (timeout > 0) then -- NaN passed '<= 0'
    field_error(name, "timeout", "must be a positive number of seconds")
  end
  local validator, compiled
  if luact.schema then
    local v, err = luact.schema.compile(params)
    if not v then field_error(name, "params", "is not a valid JSON schema: " .. err) end
    validator = function(args) return v:validate(args) end
    compiled = v
  end
  for _, hook in ipairs { "apply", "present" } do
    if spec[hook] ~= nil and type(spec[hook]) ~= "function" then field_error(name, hook, "must be a function") end
  end
  return setmetatable({
    apply = spec.apply,     -- apply(ctx, result, args): state derived from a result (runs on replay too)
    present = spec.present, -- present(result) -> what the model is shown
    name = name,
    description = spec.description or "",
    params = params,
    fn = spec.fn,
    effect = effect,
    timeout = timeout,
    validator = validator,
    _schema = compiled, -- the validator's schema (l_mcp.c's C path checks with it)
  }, Tool)
end

function luact.is_tool(v) return getmetatable(v) == Tool end
