-- mcp.lua: luact.mcp.connect: an MCP server's tools as ordinary luact
-- tools (docs/mcp.md). The C half (runtime/bindings/l_mcp.c) owns the
-- session; this half lists (with pagination), maps annotations to effect
-- classes, screens and bounds what comes back, refuses tools whose
-- definition changed during the run, and routes elicitation to luact.ask.
local luact, check_opts = ...

local mcp = luact.mcp
local open = mcp._open
mcp._open = nil
local json = luact.json
local spawns = mcp._spawns -- the calling task's spawn count, moved (tool's _direct)
local now = mcp._clock -- monotonic, not journaled as luact.now is
local fast = mcp._fast -- a plain tool call in C (Server:_tool)
local adopted = mcp._adopted -- its journaled effect's end in Lua (effect.lua)
mcp._spawns, mcp._clock, mcp._fast, mcp._adopted = nil, nil, nil, nil
local timeout = luact.timeout

local MAX_PAGES = 100
local MAX_TOOLS = 1000

local Server = {}
Server.__index = Server
Server.__name = "luact.McpServer"

-- A raise that is the host's lack of memory (Lua's own, or a binding's).
local function is_oom(e)
  return type(e) == "string" and (e == "not enough memory" or e:find("out of memory", 1, true) ~= nil)
end

local function clean_name(s)
  s = tostring(s):gsub("[^%w_%-]", "_")
  if not s:match("^[%a_]") then s = "_" .. s end
  return s:sub(1, 64)
end

-- The model-facing text of a tools/call result.
local function result_text(res)
  local content = res.content
  if type(content) == "table" and content[2] == nil then
    -- the common answer, one text item: no list, no concat (per call)
    local c = content[1]
    if type(c) == "table" and c.type == "text" and type(c.text) == "string" then return c.text end
  end
  local parts = {}
  for _, c in ipairs(type(content) == "table" and content or {}) do
    if type(c) == "table" then
      if c.type == "text" and type(c.text) == "string" then
        parts[#parts + 1] = c.text
      elseif c.type == "resource" and type(c.resource) == "table" then
        local r = c.resource
        if type(r.text) == "string" then parts[#parts + 1] = r.text
        else parts[#parts + 1] = string.format("[resource %s]", tostring(r.uri)) end
      elseif c.type == "resource_link" then
        parts[#parts + 1] = string.format("[resource link %s]", tostring(c.uri))
      elseif c.type == "image" or c.type == "audio" then
        parts[#parts + 1] = string.format("[%s %s, %d bytes base64]", c.type,
          tostring(c.mimeType), type(c.data) == "string" and #c.data or 0)
      end
    end
  end
  if #parts == 0 and type(res.structuredContent) == "table" then
    return json.encode(res.structuredContent)
  end
  return table.concat(parts, "\n")
end

-- Cuts text to at most max bytes on a UTF-8 boundary.
local function bound(text, max)
  if #text <= max then return text end
  local cut = max
  while cut > 0 and (text:byte(cut + 1) or 0) & 0xC0 == 0x80 do cut = cut - 1 end
  return text:sub(1, cut) .. string.format("\n[... %d bytes cut]", #text - cut)
end

-- What identifies a tool's contract: a change is a possible rug pull.
local function fingerprint(t)
  return json.encode { d = t.description or "", s = t.inputSchema or json.null,
    a = t.annotations or json.null, o = t.outputSchema or json.null }
end

local function effect_of(t)
  local a = type(t.annotations) == "table" and t.annotations or {}
  if a.readOnlyHint == true then return "pure" end
  if a.idempotentHint == true and a.destructiveHint ~= true then return "idempotent" end
  return "at_most_once" -- destructive, or the server does not say
end

function Server:_session()
  local s = self._s
  if s and not s:dead() then return s end
  if s then
    if not self.restart or self.restarts >= self.max_restarts then
      return nil, self.label .. ": " .. s:dead(), "server_died"
    end
    self.restarts = self.restarts + 1
    s:close()
  end
  local err, code
  s, err, code = open(self._cfg)
  while s and err == "authorize" do
    -- OAuth's user-agent step during the handshake (code is the URL)
    self:_authorize(s, code)
    s, err, code = s:_wait_open()
  end
  if not s then return nil, self.label .. ": " .. err, code end
  self._s = s
  self.version = s:version()
  return s
end

-- One request; progress and the server's own requests are handled while
-- it runs. Returns the result table or nil, message, code.
-- What request returns first, then the text and whether it is an error,
-- for a result of one text item when opts._text asks for it (a tool call:
-- no result table is built).
local TEXT = setmetatable({}, { __name = "luact.mcp.text" })

local NO_OPTS = setmetatable({}, { __newindex = function() error("NO_OPTS is read-only", 2) end })
local TEXT_OPTS = setmetatable({}, { __index = { _text = true }, __newindex = function() error("TEXT_OPTS is read-only", 2) end })

function Server:request(method, params, opts)
  if type(method) ~= "string" then error("server:request: 'method' must be a string", 2) end
  local s, err, code = self._s
  if not s or s:dead() then
    s, err, code = self:_session()
    if not s then return nil, err, code end
  end
  opts = opts or NO_OPTS -- not one table per call
  local op
  op, err, code = s:_start(method, params, opts.timeout or self.timeout, opts.on_progress ~= nil, opts._text)
  if not op then return nil, self.label .. ": " .. err, code end
  return self:_drive(s, op, method, params, opts, op:wait())
end

-- The rest of a request from its op's first event on (kind, a, b, c):
-- until its result or error.
function Server:_drive(s, op, method, params, opts, kind, a, b, c)
  while true do
    if kind == "result" then
      if type(a) ~= "table" then return nil, self.label .. ": result is not an object", "bad_result" end
      if a.resultType ~= "input_required" then return a end
      -- The server needs input first: answer, then send the request again
      -- with the answers and its opaque state (at most MAX_ROUNDS times).
      opts = { timeout = opts.timeout, on_progress = opts.on_progress, _text = opts._text, rounds = (opts.rounds or 0) + 1 }
      if opts.rounds > 8 then
        return nil, self.label .. ": the server asked for input more than 8 times", "mcp_error"
      end
      local p = {}
      for k, v in pairs(params or {}) do p[k] = v end
      local unsupported
      p.inputResponses, unsupported = self:_input_responses(a.inputRequests)
      if unsupported then
        -- asking again would get the same request: fail now, clearly
        return nil, string.format("%s: the server asked for %s, which luact does not offer",
          self.label, unsupported), "mcp_error"
      end
      p.requestState = a.requestState
      return self:request(method, p, opts)
    elseif kind == "text" then -- opts._text: one text item (see TEXT)
      return TEXT, a, b
    elseif kind == "error" then
      return nil, string.format("%s: %s", self.label, a), b, c
    elseif kind == "progress" then
      if opts.on_progress then pcall(opts.on_progress, a) end
    elseif kind == "request" then
      self:_answer(s, a, b, c)
    elseif kind == "authorize" then
      self:_authorize(s, a)
    end
    kind, a, b, c = op:wait()
  end
end

-- elicitation/create: the script's on_elicit, else luact.ask per field;
-- fields left out take the schema's defaults. Returns the ElicitResult.
function Server:_elicit(params)
  local ok, content = pcall(function()
    if self.on_elicit then return self.on_elicit(params) end
    if type(luact.ask) ~= "function" then return nil end
    local schema = type(params.requestedSchema) == "table" and params.requestedSchema or {}
    local props = type(schema.properties) == "table" and schema.properties or {}
    local names = {}
    for k in pairs(props) do names[#names + 1] = k end
    table.sort(names)
    local required = {}
    for _, k in ipairs(type(schema.required) == "table" and schema.required or {}) do required[k] = true end
    local out = {}
    for _, k in ipairs(names) do
      local p = type(props[k]) == "table" and props[k] or {}
      if p.type == "string" or p.type == "number" or p.type == "integer" or p.type == "boolean" then
        local q = string.format("[%s asks] %s\n%s%s%s: ", self.label, tostring(params.message or ""),
          k, type(p.description) == "string" and (" (" .. p.description .. ")") or "",
          p.default ~= nil and (" [" .. tostring(p.default) .. "]") or "")
        local line = luact.ask(q)
        if line == nil then return nil end -- no input: decline
        local v = line
        if line == "" then v = p.default
        elseif p.type == "number" or p.type == "integer" then
          v = tonumber(line)
          if p.type == "integer" and v then v = math.tointeger(v) end
        elseif p.type == "boolean" then
          v = line == "y" or line == "yes" or line == "true"
        end
        if v == nil and required[k] then return nil end
        out[k] = v
      end
    end
    return out
  end)
  if ok and type(content) == "table" then
    -- SEP-1034: a field the answer leaves out takes the schema's default
    local schema = type(params.requestedSchema) == "table" and params.requestedSchema or {}
    if type(schema.properties) == "table" then
      for k, p in pairs(schema.properties) do
        if type(p) == "table" and p.default ~= nil and content[k] == nil then content[k] = p.default end
      end
    end
    return { action = "accept", content = content }
  end
  return { action = "decline" }
end

-- A request the server sent during a call (2025-11-25): answered on the
-- session (the binding only passes elicitation/create).
function Server:_answer(s, method, params, id)
  s:_respond(id, self:_elicit(params))
end

-- 2026-07-28 multi round-trip: the answers to a result's inputRequests,
-- keyed as the server keyed them. Elicitation is answered; roots is an
-- empty list; anything else (sampling) is returned second, by method, so
-- the call fails instead of the server asking again and again.
function Server:_input_responses(reqs)
  local out, unsupported = {}, nil
  for key, r in pairs(type(reqs) == "table" and reqs or {}) do
    if type(r) == "table" then
      if r.method == "elicitation/create" then
        out[key] = self:_elicit(type(r.params) == "table" and r.params or {})
      elseif r.method == "roots/list" then
        out[key] = { roots = luact.json.array {} }
      else
        unsupported = tostring(r.method)
      end
    end
  end
  return out, unsupported
end

-- OAuth's user-agent step: the script's auth.authorize gets the URL and
-- returns where the browser was sent back to (or the bare code); the
-- binding checks the state and gets the token (docs/mcp.md).
function Server:_authorize(s, url)
  local fn = self.auth and self.auth.authorize
  if not fn then
    s:_authorized(nil, "no auth.authorize callback")
    return
  end
  local ok, r, why = pcall(fn, url)
  if ok and type(r) == "string" and r ~= "" then
    s:_authorized(r)
  elseif ok then
    s:_authorized(nil, "auth.authorize gave no redirect URL" .. (why and (": " .. tostring(why)) or ""))
  else
    s:_authorized(nil, "auth.authorize failed: " .. tostring(r))
  end
end

-- Follows nextCursor; items under key.
function Server:_list(method, key)
  local all, cursor = {}, nil
  for _ = 1, MAX_PAGES do
    local res, err, code = self:request(method, cursor and { cursor = cursor } or nil)
    if not res then return nil, err, code end
    for _, t in ipairs(type(res[key]) == "table" and res[key] or {}) do
      all[#all + 1] = t
      if #all > MAX_TOOLS then return nil, self.label .. ": more than " .. MAX_TOOLS .. " " .. key, "too_many" end
    end
    cursor = res.nextCursor
    if type(cursor) ~= "string" or cursor == "" then return all end
  end
  return nil, self.label .. ": " .. method .. " did not end after " .. MAX_PAGES .. " pages", "too_many"
end

-- The opening mark of a tool's output, made once per server label and
-- tool (two %q formats per call before).
local function header(self, tool)
  local cache = self._headers
  if not cache or cache[1] ~= self.label then
    cache = { self.label }
    self._headers = cache
  end
  local h = cache[tool]
  if not h then
    h = string.format("<mcp-tool-output server=%q tool=%q>\n", self.label, tool)
    cache[tool] = h
  end
  return h
end

-- The output the model sees: bounded, screened, marked as data.
function Server:_present(tool, text)
  text = bound(text, self.max_output)
  if self.screen then
    local ok, r, why = pcall(self.screen, text, tool)
    if not ok then return nil, "screen failed: " .. tostring(r), "screened" end
    if r == nil then return nil, "output withheld by the screen" .. (why and (": " .. tostring(why)) or ""), "screened" end
    text = bound(tostring(r), self.max_output)
  end
  if text:find("</mcp-tool-output>", 1, true) then -- a closing mark inside: defused
    text = text:gsub("</mcp%-tool%-output>", "</mcp-tool-output_>")
  end
  return header(self, tool) .. text .. "\n</mcp-tool-output>"
end

-- tools/list again when the server said it changed: a tool whose contract
-- changed is refused until accepted.
function Server:_refresh()
  local list, err, code = self:_list("tools/list", "tools")
  if not list then return nil, err, code end
  local seen = {}
  for _, t in ipairs(list) do
    if type(t) == "table" and type(t.name) == "string" then
      seen[t.name] = true
      local old = self._defs[t.name]
      local fp = fingerprint(t)
      if old and old.fp ~= fp and not self._refused[t.name] then
        local accept = self.on_change and select(2, pcall(self.on_change, t.name, old.def, t)) == true
        if accept then self._defs[t.name] = { fp = fp, def = t }
        else self._refused[t.name] = { fp = fp, def = t } end
      elseif not old then
        self._pending_new[t.name] = t
      end
    end
  end
  for name in pairs(self._defs) do
    if not seen[name] then self._gone[name] = true end
  end
  return true
end

--- server:accept(name): takes a changed tool's new definition.
function Server:accept(name)
  local r = self._refused[name]
  if not r then return false end
  self._defs[name] = r
  self._refused[name] = nil
  return true
end

function Server:call(name, args, opts)
  if type(name) ~= "string" then error("server:call: 'name' must be a string", 2) end
  local s = self._s
  if s and not s:dead() then
    local tools_changed = s:_changed()
    if tools_changed then -- notifications/tools/list_changed: list again
      local ok, err, code = self:refresh()
      if not ok then return nil, err, code end
    end
  end
  if self._refused[name] then
    return nil, string.format("%s: tool %s changed its description or schema during the run; refused until the script accepts it (server:accept)", self.label, name), "tool_changed"
  end
  if self._gone[name] then
    return nil, string.format("%s: tool %s is no longer offered", self.label, name), "tool_gone"
  end
  return self:request("tools/call", { name = name, arguments = args or {} }, opts)
end

function Server:_tool(def)
  local name = clean_name((self.prefix or "") .. def.name)
  local n = 2
  while self.tool[name] do
    name = clean_name((self.prefix or "") .. def.name):sub(1, 60) .. "_" .. n
    n = n + 1
  end
  local server, mname = self, def.name
  local eff = effect_of(def)
  -- What the model sees of a call's first outcome; a pure or idempotent
  -- call whose server died is run once more on a restarted server.
  local function outcome(args, res, err, code)
    if not res and (code == "server_died") and eff ~= "at_most_once" then
      res, err, code = server:call(mname, args, TEXT_OPTS) -- safe to run again: restart once
    end
    if not res then return nil, err, code end
    local text, is_error
    if res == TEXT then text, is_error = err, code
    else text, is_error = result_text(res), res.isError == true end
    if is_error then
      local msg = server:_present(mname, text ~= "" and text or "error")
      return nil, msg or "tool error", "tool_error"
    end
    return server:_present(mname, text)
  end
  local t = luact.tool {
    name = name,
    description = type(def.description) == "string" and def.description or (def.title or ""),
    params = type(def.inputSchema) == "table" and def.inputSchema or { type = "object" },
    effect = eff,
    timeout = self.timeout,
    fn = function(args)
      local opts = server.on_progress and { _text = true, on_progress = function(p)
        server.on_progress(mname, p)
      end } or TEXT_OPTS
      return outcome(args, server:call(mname, args, opts))
    end,
  }
  local body = t.fn
  t._noctx = body -- body never reads its ctx (tool.lua: none made unjournaled)
  -- tool.lua's _direct, in place of luact.timeout(secs, fn, args, ctx):
  -- the usual call is one request on a live session, and that request
  -- has its own deadline (the same seconds, armed before the timeout's
  -- timer would be, so it fired first there too: the same "timed out"
  -- result and notifications/cancelled), and a kill of the calling task
  -- cancels it as it cancelled the child. So it runs in the calling task:
  -- no child task, coroutine or second timer per call. Anything more (a
  -- session to open, a tool list to fetch, progress or screen callbacks,
  -- a server's request or input_required mid-call, a restart) goes on
  -- under luact.timeout with the time left, in the child the plain path
  -- would have spawned (its spawn number: effects in it, luact.ask's,
  -- keep their journal names). The two spawn numbers that path takes are
  -- taken here too, so later tasks and the journal's counts match.
  -- _direct's part after the request's first event (or its failed
  -- start: op nil, err, code): the C path (mcp._fast) goes on here too.
  local function after(secs, args, s, t0, op, kind, a, b, c, err, code)
    if kind == "text" then
      -- the usual answer: short text, no closing mark in it, not an
      -- error: what _present makes of it, without its calls
      local hs = server._headers
      local h = not b and #a <= server.max_output and hs and hs[1] == server.label and hs[mname]
      if h and not a:find("</mcp-tool-output>", 1, true) then return h .. a .. "\n</mcp-tool-output>" end
      return outcome(args, TEXT, a, b)
    end
    if kind == "error" then
      err, code = string.format("%s: %s", server.label, a), b
    elseif kind == "result" and type(a) == "table" and a.resultType ~= "input_required" then
      return outcome(args, a)
    elseif not op then
      err = server.label .. ": " .. err
    end
    if op and kind ~= "error" or code == "server_died" and eff ~= "at_most_once" then
      -- more than the one request: the rest under the timeout, as before
      spawns(-2)
      local left = secs - (now() - t0)
      return timeout(left > 0 and left or 0, function()
        if op and kind ~= "error" then
          return outcome(args, server:_drive(s, op, "tools/call", { name = mname, arguments = args or {} },
            TEXT_OPTS, kind, a, b, c))
        end
        return outcome(args, nil, err, code)
      end)
    end
    return nil, err, code
  end
  t._direct = function(secs, fn, args, ctx)
    local s = server._s
    if fn ~= body or secs ~= server.timeout or server.on_progress or server.screen or not s
        or not s:_plain() or server._refused[mname] or server._gone[mname] then
      return timeout(secs, fn, args, ctx)
    end
    local t0 = now()
    spawns(2)
    local op, err, code = s:_call(mname, args or nil, secs) -- _start's bytes, no params table
    local kind, a, b, c
    if op then
      repeat kind, a, b, c = op:wait() until kind ~= "progress" -- asked for none: dropped
    end
    return after(secs, args, s, t0, op, kind, a, b, c, err, code)
  end
  -- The whole plain call in C (l_mcp.c's mcp._fast), as tool.call: the
  -- checks _direct and Tool:call make, the arguments validated, the
  -- request sent and its plain answer marked there; anything else goes on
  -- in Lua (Tool.call from the start, or rest after the first event).
  -- A run that records journals the call there too, as its one line
  -- (pure tools; the line ended in C, or through adopted when the rest
  -- is Lua's). nil in a run that replays or resumes: no call could take
  -- that path.
  local settle = getmetatable(t)._settle
  if fast and t._schema then
    t.call = fast(server, mname, body, t.validator, t._schema, t._direct, getmetatable(t).call,
      function(tool, args, s, t0, op, kind, a, b, c, err, code)
        return settle(tool, pcall(after, server.timeout, args, s, t0, op, kind, a, b, c, err, code))
      end, adopted)
  end
  self.tool[name] = t
  return t
end

local CONNECT = "luact.mcp.connect"
local function field(f, msg) error(string.format("%s: '%s' %s", CONNECT, f, msg), 3) end

--- luact.mcp.connect{command=, args=, env=} | {url=, headers=} ->
--  server (server.tools: luact tools) | nil, message, code
function mcp.connect(spec)
  if type(spec) ~= "table" then error(CONNECT .. ": expected a table {command=} or {url=}", 2) end
  local bad = check_opts(spec, CONNECT)
  if bad then error(bad, 2) end
  if (spec.command == nil) == (spec.url == nil) then field("command", "or 'url' is required (exactly one)") end
  if spec.command ~= nil and (type(spec.command) ~= "string" or spec.command == "") then field("command", "must be a non-empty string") end
  if spec.url ~= nil and (type(spec.url) ~= "string" or not spec.url:match("^https?://")) then field("url", "must be an http:// or https:// URL") end
  for _, f in ipairs { "args", "env", "headers" } do
    if spec[f] ~= nil and type(spec[f]) ~= "table" then field(f, "must be a table") end
  end
  if spec.url and (spec.args or spec.env) then field("args", "and 'env' are for a command, not a url") end
  local auth
  if spec.auth ~= nil then
    if type(spec.auth) ~= "table" then field("auth", "must be a table") end
    if not spec.url then field("auth", "is for a url, not a command") end
    local a = spec.auth
    for _, f in ipairs { "client_id", "client_secret", "client_metadata_url", "client_name", "redirect_uri", "scope" } do
      if a[f] ~= nil and type(a[f]) ~= "string" then field("auth", "field '" .. f .. "' must be a string") end
    end
    if a.authorize ~= nil and type(a.authorize) ~= "function" then field("auth", "field 'authorize' must be a function") end
    if a.grant ~= nil and a.grant ~= "authorization_code" and a.grant ~= "client_credentials" then
      field("auth", "field 'grant' must be authorization_code or client_credentials")
    end
    if a.grant == "client_credentials" and not (a.client_id and a.client_secret) then
      field("auth", "client_credentials needs client_id and client_secret")
    end
    if a.client_secret and not a.client_id then field("auth", "client_secret needs client_id") end
    auth = { client_id = a.client_id, client_secret = a.client_secret,
      client_metadata_url = a.client_metadata_url, client_name = a.client_name,
      redirect_uri = a.redirect_uri, scope = a.scope, grant = a.grant,
      interactive = a.authorize ~= nil }
  end
  if spec.command and spec.headers then field("headers", "is for a url, not a command") end
  for _, f in ipairs { "screen", "on_progress", "on_change", "on_elicit" } do
    if spec[f] ~= nil and type(spec[f]) ~= "function" then field(f, "must be a function") end
  end
  for _, f in ipairs { "timeout", "connect_timeout", "max_output", "max_message", "max_restarts" } do
    -- not (x > 0): NaN passed 'x <= 0' (a timeout that never fires)
    if spec[f] ~= nil and (type(spec[f]) ~= "number" or not (spec[f] > 0)) then
      field(f, "must be a positive number")
    end
  end
  if spec.prefix ~= nil and type(spec.prefix) ~= "string" then field("prefix", "must be a string") end
  if spec.name ~= nil and type(spec.name) ~= "string" then field("name", "must be a string") end
  if spec.protocol ~= nil and spec.protocol ~= "2026-07-28" and spec.protocol ~= "2025-11-25"
      and spec.protocol ~= "2025-06-18" then
    field("protocol", "must be 2026-07-28, 2025-11-25 or 2025-06-18")
  end
  local argv
  if spec.command then
    argv = { spec.command }
    for i, a in ipairs(spec.args or {}) do
      if type(a) ~= "string" then field("args", "must be a list of strings") end
      argv[i + 1] = a
    end
  end
  local label = spec.name or spec.command or spec.url
  local self = setmetatable({
    label = label,
    prefix = spec.prefix,
    timeout = spec.timeout or 60,
    max_output = math.floor(spec.max_output or 16384),
    screen = spec.screen,
    on_progress = spec.on_progress,
    on_change = spec.on_change,
    on_elicit = spec.on_elicit,
    auth = spec.auth and { authorize = spec.auth.authorize },
    restart = spec.restart ~= false,
    max_restarts = spec.max_restarts or 3,
    restarts = 0,
    tools = {}, tool = {}, skipped = {},
    _defs = {}, _refused = {}, _gone = {}, _pending_new = {},
    _cfg = { argv = argv, env = spec.env, url = spec.url, headers = spec.headers,
      max_message = spec.max_message and math.floor(spec.max_message),
      connect_timeout = spec.connect_timeout, protocol = spec.protocol, auth = auth },
  }, Server)
  -- The listing is a journaled effect: a replay gets it from the journal
  -- and starts no server (the session opens on the first real call).
  local request = { command = argv, url = spec.url }
  local list, err, code = luact.effect("mcp", "tools/list " .. label, request, "pure",
    function() return self:_list("tools/list", "tools") end)
  if not list then
    if self._s then self._s:close() end
    return nil, err, code
  end
  for _, def in ipairs(list) do
    if type(def) == "table" and type(def.name) == "string" and not self._defs[def.name] then
      self._defs[def.name] = { fp = fingerprint(def), def = def }
      local tok, t = pcall(Server._tool, self, def)
      if tok then self.tools[#self.tools + 1] = t
      elseif is_oom(t) then error(t, 0) -- not the tool's fault: never a silent skip
      else self.skipped[def.name] = tostring(t):gsub("^.-luact%.tool", "luact.tool") end
    end
  end
  return self
end

--- server:refresh(): lists again; new tools are added to server.tools.
function Server:refresh()
  local ok, err, code = self:_refresh()
  if not ok then return nil, err, code end
  for name, def in pairs(self._pending_new) do
    self._defs[name] = { fp = fingerprint(def), def = def }
    local tok, t = pcall(Server._tool, self, def)
    if tok then self.tools[#self.tools + 1] = t
    elseif is_oom(t) then error(t, 0)
    else self.skipped[name] = tostring(t) end
  end
  self._pending_new = {}
  return self.tools
end

function Server:resources() return self:_list("resources/list", "resources") end
function Server:read(uri)
  if type(uri) ~= "string" then error("server:read: 'uri' must be a string", 2) end
  local r, err, code = self:request("resources/read", { uri = uri })
  if not r then return nil, err, code end
  return r.contents
end
function Server:prompts() return self:_list("prompts/list", "prompts") end
function Server:prompt(name, args)
  if type(name) ~= "string" then error("server:prompt: 'name' must be a string", 2) end
  return self:request("prompts/get", { name = name, arguments = args })
end
function Server:info()
  local s = self:_session()
  return s and s:info()
end
function Server:stats() return self._s and self._s:stats() end
function Server:dead() return self._s and self._s:dead() end
function Server:close()
  if self._s then self._s:close() end
  self._s = nil
  self.restart = false
end
