-- mcp_serve.lua: luact.mcp.serve(dir): luact's agents and tools as an MCP
-- server over stdio (`luact mcp serve AGENTS_DIR`). Every DIR/*.lua is run
-- once and returns a luact.tool, a list of them, or an agent
-- {name=, description=, params=, run=function(args) -> answer | result};
-- each becomes an MCP tool with its schema and annotations. Every call runs
-- in its own task: calls overlap, and notifications/cancelled kills one.
-- A call's luact.ask (or ctx.elicit) asks the client: elicitation/create,
-- or for 2026-07-28 an input_required result and the client's retry;
-- luact.mcp.sample (ctx.sample) asks the client's model
-- (sampling/createMessage), luact.mcp.log (ctx.log) sends
-- notifications/message. A file may also declare resources, resource
-- templates and prompts (with completions): see load_dir. Over HTTP an
-- initialize opens a session (Mcp-Session-Id) with its own capabilities,
-- log level, subscriptions and GET stream; requests without one are
-- served statelessly as before.
local luact, check_opts = ...

local mcp = luact.mcp
local stdio, http, new_slot, task_path = mcp._stdio, mcp._http, mcp._slot, mcp._path
mcp._stdio, mcp._http, mcp._slot, mcp._path = nil, nil, nil, nil
local json = luact.json

local VERSIONS = { ["2026-07-28"] = true, ["2025-11-25"] = true, ["2025-06-18"] = true }
local NEWEST_STATEFUL = "2025-11-25"

local LEVELS = { debug = 0, info = 1, notice = 2, warning = 3, error = 4, critical = 5,
  alert = 6, emergency = 7 }
local MAX_SESSIONS = 256
local MAX_COMPLETIONS = 100

-- Content: a tool (or a prompt) returns luact.mcp.content{...} to send
-- items other than one text. Items are checked when made (misuse raises).
local CONTENT = {} -- metatable of a checked content list
local function is_b64(v) return type(v) == "string" and v:match("^[A-Za-z0-9+/]*=?=?$") ~= nil and #v % 4 == 0 end

local function item_of(it, who, lvl)
  lvl = lvl + 1
  if type(it) == "string" then return { type = "text", text = it } end
  if type(it) ~= "table" then error(who .. ": an item must be a string or a table", lvl) end
  local t = it.type
  local function str(k, opt)
    local v = it[k]
    if v == nil and opt then return nil end
    if type(v) ~= "string" then error(string.format("%s: a %s item needs '%s' (a string)", who, tostring(t), k), lvl + 1) end
    return v
  end
  if t == "text" then return { type = "text", text = str("text") } end
  if t == "image" or t == "audio" then
    if not is_b64(it.data) then error(who .. ": an " .. t .. " item needs 'data' (base64)", lvl) end
    return { type = t, data = it.data, mimeType = str("mime_type") }
  end
  if t == "resource" then
    local r = { uri = str("uri"), mimeType = str("mime_type", true) }
    if it.blob ~= nil then
      if not is_b64(it.blob) then error(who .. ": a resource item's 'blob' must be base64", lvl) end
      r.blob = it.blob
    else r.text = str("text") end
    return { type = "resource", resource = r }
  end
  if t == "resource_link" then
    return { type = "resource_link", uri = str("uri"), name = str("name"),
      description = str("description", true), mimeType = str("mime_type", true) }
  end
  error(who .. ": unknown item type " .. tostring(t) ..
    " (text, image, audio, resource, resource_link)", lvl)
end

--- luact.mcp.content{item, ...}: a served tool's result of several items
-- (text, image, audio, embedded resource, resource link).
function mcp.content(items)
  if type(items) ~= "table" then error("luact.mcp.content: expected a list of items", 2) end
  local out = {}
  for i, it in ipairs(items) do out[i] = item_of(it, "luact.mcp.content", 2) end
  if #out == 0 then error("luact.mcp.content: no items", 2) end
  return setmetatable(out, CONTENT)
end

local function annotations(effect)
  if effect == "pure" then return { readOnlyHint = true } end
  if effect == "idempotent" then return { readOnlyHint = false, idempotentHint = true, destructiveHint = false } end
  return { readOnlyHint = false, idempotentHint = false }
end

-- An agent spec becomes a tool whose effect is at-most-once (it calls
-- models and tools of its own).
local function agent_tool(spec, file)
  if type(spec.run) ~= "function" then error(file .. ": an agent needs run = function(args)", 0) end
  return luact.tool {
    name = spec.name, description = spec.description or ("Agent " .. spec.name),
    params = spec.params or { type = "object", properties = { question = { type = "string" } },
      required = { "question" } },
    effect = spec.effect or "at_most_once", timeout = spec.timeout or 600,
    fn = function(args, ctx)
      local r, e = spec.run(args, ctx)
      if type(r) == "table" and r.status ~= nil then
        if r.status ~= "finished" then return nil, tostring(r.reason or r.status) end
        return r.answer
      end
      if r == nil then return nil, e end
      return r
    end,
  }
end

-- A template's URI pattern: {name} matches one path segment (RFC 6570
-- level 1, without '/'); the rest is literal.
local function template_pattern(t, file)
  local names, parts, pos = {}, {}, 1
  local function lit(x)
    if x:find("[{}]") then error(file .. ": bad uri_template " .. t .. " ({name} only)", 0) end
    return (x:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
  end
  while true do
    local a, b, name = t:find("{([%w_]+)}", pos)
    if not a then break end
    parts[#parts + 1] = lit(t:sub(pos, a - 1)) .. "([^/]+)"
    names[#names + 1] = name
    pos = b + 1
  end
  parts[#parts + 1] = lit(t:sub(pos))
  if #names == 0 then error(file .. ": a uri_template needs a {name}: " .. t, 0) end
  return "^" .. table.concat(parts) .. "$", names
end

local function check_complete(c, file, what)
  if c == nil then return {} end
  if type(c) ~= "table" then error(file .. ": " .. what .. "'s complete must be a table", 0) end
  for k, v in pairs(c) do
    if type(k) ~= "string" or (type(v) ~= "function" and type(v) ~= "table") then
      error(file .. ": " .. what .. "'s complete maps an argument to a list or a function", 0)
    end
  end
  return c
end

-- The resources, templates and prompts a file declares (checked here:
-- a mistake stops the server at start with the file's name).
local function declare(v, file, decl)
  local function need(t, k, ty, what)
    if type(t[k]) ~= ty then error(string.format("%s: %s needs '%s' (a %s)", file, what, k, ty), 0) end
  end
  if v.resources ~= nil then
    if type(v.resources) ~= "table" then error(file .. ": resources must be a list", 0) end
    for _, r in ipairs(v.resources) do
      if type(r) ~= "table" then error(file .. ": a resource must be a table", 0) end
      need(r, "uri", "string", "a resource")
      need(r, "name", "string", "resource " .. r.uri)
      local n = (r.text ~= nil and 1 or 0) + (r.blob ~= nil and 1 or 0) + (r.read ~= nil and 1 or 0)
      if n ~= 1 or (r.text ~= nil and type(r.text) ~= "string") or (r.blob ~= nil and not is_b64(r.blob))
          or (r.read ~= nil and type(r.read) ~= "function") then
        error(file .. ": resource " .. r.uri .. " needs one of text (a string), blob (base64) or read (a function)", 0)
      end
      if decl.resource[r.uri] then error(file .. ": a second resource " .. r.uri, 0) end
      decl.resource[r.uri] = r
      decl.resources[#decl.resources + 1] = r
    end
  end
  if v.templates ~= nil then
    if type(v.templates) ~= "table" then error(file .. ": templates must be a list", 0) end
    for _, t in ipairs(v.templates) do
      if type(t) ~= "table" then error(file .. ": a template must be a table", 0) end
      need(t, "uri_template", "string", "a template")
      need(t, "name", "string", "template " .. t.uri_template)
      need(t, "read", "function", "template " .. t.uri_template)
      t.pattern, t.vars = template_pattern(t.uri_template, file)
      t.complete = check_complete(t.complete, file, "template " .. t.uri_template)
      if decl.template[t.uri_template] then error(file .. ": a second template " .. t.uri_template, 0) end
      decl.template[t.uri_template] = t
      decl.templates[#decl.templates + 1] = t
    end
  end
  if v.prompts ~= nil then
    if type(v.prompts) ~= "table" then error(file .. ": prompts must be a list", 0) end
    for _, p in ipairs(v.prompts) do
      if type(p) ~= "table" then error(file .. ": a prompt must be a table", 0) end
      need(p, "name", "string", "a prompt")
      need(p, "get", "function", "prompt " .. p.name)
      p.arguments = p.arguments or {}
      if type(p.arguments) ~= "table" then error(file .. ": prompt " .. p.name .. "'s arguments must be a list", 0) end
      for _, a in ipairs(p.arguments) do
        if type(a) ~= "table" or type(a.name) ~= "string" then
          error(file .. ": prompt " .. p.name .. ": each argument needs a name", 0)
        end
      end
      p.complete = check_complete(p.complete, file, "prompt " .. p.name)
      if decl.prompt[p.name] then error(file .. ": a second prompt " .. p.name, 0) end
      decl.prompt[p.name] = p
      decl.prompts[#decl.prompts + 1] = p
    end
  end
end

local function load_dir(dir)
  local root = assert(luact.files.root(dir))
  local entries = assert(root:list("."))
  table.sort(entries, function(a, b) return a.name < b.name end)
  local tools, by_name = {}, {}
  local decl = { resources = {}, resource = {}, templates = {}, template = {}, prompts = {}, prompt = {} }
  local function add(t, file)
    if not luact.is_tool(t) then error(file .. ": returned something that is not a luact.tool or an agent", 0) end
    if by_name[t.name] then error(file .. ": a second tool named " .. t.name, 0) end
    by_name[t.name] = t
    tools[#tools + 1] = t
  end
  for _, e in ipairs(entries) do
    if e.type == "file" and e.name:match("%.lua$") then
      local file = dir .. "/" .. e.name
      local chunk, err = loadfile(file, "t")
      if not chunk then error(err, 0) end
      local v = chunk()
      if luact.is_tool(v) then add(v, file)
      elseif type(v) == "table" and v.run ~= nil then add(agent_tool(v, file), file)
      elseif type(v) == "table" then
        declare(v, file, decl)
        for _, t in ipairs(v) do
          if type(t) == "table" and not luact.is_tool(t) and t.run then t = agent_tool(t, file) end
          add(t, file)
        end
      else
        error(file .. ": must return a luact.tool, a list of them, or an agent {name=, run=}", 0)
      end
    end
  end
  return tools, by_name, decl
end

local function text_of(v)
  if type(v) == "string" then return v end
  return json.encode(v)
end

-- A served tool's return value as a tools/call result.
local function tool_result(r)
  if getmetatable(r) == CONTENT then
    local c = {}
    for i, it in ipairs(r) do c[i] = it end
    return { content = c }
  end
  local res = { content = { { type = "text", text = text_of(r) } } }
  if type(r) == "table" then res.structuredContent = r end
  return res
end

-- The server now serving (one per process): luact.mcp.log, .sample and
-- .resource_updated act through it.
local active

--- luact.mcp.log(level, data [, logger]) -> true | false: an MCP log
-- message (notifications/message) to the client of the served call this
-- task belongs to; false outside one, or below the level it set.
function mcp.log(level, data, logger)
  if LEVELS[level] == nil then error("luact.mcp.log: 'level' must be one of debug, info, notice, warning, error, critical, alert, emergency", 2) end
  if logger ~= nil and type(logger) ~= "string" then error("luact.mcp.log: 'logger' must be a string", 2) end
  if data == nil then error("luact.mcp.log: 'data' is required", 2) end
  local c = active and active.call_here()
  if not c then return false end
  return active.log(c, level, data, logger)
end

--- luact.mcp.sample(request) -> {text=, content=, model=, stop_reason=, role=}
-- | nil, message, code: asks the served call's client's model
-- (sampling/createMessage). request: a prompt string, or {messages =
-- {{role=, content=}}, system=, max_tokens=, temperature=, stop=,
-- model_hint=}.
function mcp.sample(req)
  if type(req) ~= "string" and type(req) ~= "table" then
    error("luact.mcp.sample: expected a prompt string or a request table", 2)
  end
  local c = active and active.call_here()
  if not c then return nil, "not inside a served MCP call", "no_call" end
  return active.sample(c, req, 3)
end

--- luact.mcp.resource_updated(uri) -> n: tells every client subscribed to
-- uri (resources/subscribe) that it changed; n clients were told.
function mcp.resource_updated(uri)
  if type(uri) ~= "string" then error("luact.mcp.resource_updated: 'uri' must be a string", 2) end
  return active and active.updated(uri) or 0
end

-- 16 random bytes as hex: a session id another client cannot guess.
local function random_id()
  local f = io.open("/dev/urandom", "rb")
  local b = f and f:read(16)
  if f then f:close() end
  if not b or #b ~= 16 then
    b = string.pack("<i8i8", math.random(math.mininteger, math.maxinteger), math.random(math.mininteger, math.maxinteger))
  end
  return (b:gsub(".", function(ch) return string.format("%02x", ch:byte()) end))
end

--- luact.mcp.serve(dir [, {http = port, token =}]): serves until stdin
-- ends (stdio) or forever (HTTP).
function mcp.serve(dir, opts)
  if type(dir) ~= "string" then error("luact.mcp.serve: 'dir' must be a string", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("luact.mcp.serve: 'opts' must be a table", 2) end
  local bad = opts and check_opts(opts, "luact.mcp.serve")
  if bad then error(bad, 2) end
  -- checked here, before the cast to C's int (2^32 + 80 wrapped to 80)
  if opts and type(opts.http) == "number" and not (opts.http >= 0 and opts.http <= 65535) then
    error("luact.mcp.serve: 'http' must be a port number (0 to 65535)", 2)
  end
  if active then error("luact.mcp.serve: a server is already running in this Lua state", 2) end
  local tools, by_name, decl = load_dir(dir)
  local http_mode = opts and opts.http
  local chan, err
  if http_mode then
    if type(opts.http) ~= "number" then error("luact.mcp.serve: 'http' must be a port number", 2) end
    if type(opts.token) ~= "string" then error("luact.mcp.serve: 'token' is required with http", 2) end
    chan, err = http(math.floor(opts.http), opts.token)
    if not chan then return nil, err end
    io.stderr:write(string.format("luact mcp: listening on http://127.0.0.1:%d/mcp\n", chan:port()))
  else
    chan = stdio()
  end

  -- Sessions. Over stdio there is one; over HTTP initialize opens one
  -- (Mcp-Session-Id) and a request without the header is served
  -- statelessly with what the last initialize declared.
  local sessions, nsessions, clock = {}, 0, 0
  local function new_session(caps)
    return { caps = caps, level = nil, subs = {}, nsubs = 0, get = nil, eid = 0, used = 0,
      streams = {}, nstreams = 0, glog = {} }
  end
  local stdio_sess = not http_mode and new_session({}) or nil
  local last_caps = {} -- what the last initialize declared (stateless HTTP)

  local live = {}     -- call key -> {task =, drop =, sess =}
  local calls = {}    -- task path of a running call -> its call record
  local pending = {}  -- our request id -> slot
  local nreq = 0
  -- 2026-07-28 has no server-initiated requests: the call answers
  -- resultType "input_required" and the client sends tools/call again
  -- with the answers and our requestState. The run's task stays suspended
  -- in between; the retry is bound to it by that state.
  local retries = {}  -- requestState -> {slot =, call =, key =}
  local stdin_closed = false -- stdio: the client closed its end

  -- A message to a session outside any call: stdio writes it, HTTP puts
  -- it on the session's GET stream (dropped when it has none).
  local function push(sess, msg)
    if stdio_sess then chan:write(json.encode(msg)) return true end
    if not sess then return false end
    -- the last 100 are kept for a GET that resumes with Last-Event-ID
    sess.eid = sess.eid + 1
    local body = json.encode(msg)
    sess.glog[#sess.glog + 1] = { n = sess.eid, body = body }
    if #sess.glog > 100 then table.remove(sess.glog, 1) end
    if not sess.get then return false end
    if chan:event(sess.get, body, sess.id .. "-" .. sess.eid) then return true end
    sess.get = nil -- the client went
    return false
  end

  local function end_session(sess)
    sessions[sess.id] = nil
    nsessions = nsessions - 1
    for key, l in pairs(live) do
      if l.sess == sess then
        live[key] = nil
        luact.kill(l.task)
        if l.drop then l.drop() end
      end
    end
    if sess.get then chan:reply(sess.get, 200) sess.get = nil end
  end

  local function open_session(caps)
    if nsessions >= MAX_SESSIONS then
      -- the least recently used goes (a client that never sent DELETE)
      local old
      for _, s in pairs(sessions) do if not old or s.used < old.used then old = s end end
      end_session(old)
    end
    local sess = new_session(caps)
    sess.id = random_id()
    clock = clock + 1
    sess.used = clock
    sessions[sess.id] = sess
    nsessions = nsessions + 1
    return sess
  end

  local function call_here()
    local p = task_path()
    while p do
      local c = calls[p]
      if c then return c end
      p = p:match("^(.*)%.%d+$")
    end
  end

  -- Sends a request to the call's client and waits for the response
  -- message (stdio: a request line; HTTP: an event of the call's SSE
  -- stream, the answer coming back as a POST; 2026-07-28: an
  -- input_required answer and the client's retry).
  local function ask_client(c, method, params)
    nreq = nreq + 1
    local id = "luact-" .. nreq
    if stdin_closed then
      -- stdio after EOF: no answer can come back
      return nil, "cannot send " .. method .. ": the client closed its input", "mcp_error"
    end
    local slot = new_slot()
    if c.mrtr then
      if not c.send then return nil, "the call has no request to answer", "mcp_error" end
      -- a counter (unique) and randomness (not guessable by another client)
      local state = string.format("%s.%08x%08x", id, math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
      retries[state] = { slot = slot, call = c, key = id }
      local _ <close> = setmetatable({}, { __close = function() retries[state] = nil end })
      c.answer { resultType = "input_required", requestState = state,
        inputRequests = { [id] = { method = method, params = params } } }
      return slot:wait()
    end
    pending[id] = slot
    -- also when the task is killed while it waits (timeout, cancel)
    local _ <close> = setmetatable({}, { __close = function() pending[id] = nil end })
    if not c.request { jsonrpc = "2.0", id = id, method = method, params = params } then
      return nil, "cannot send " .. method .. ": the call's stream is closed", "mcp_error"
    end
    return slot:wait()
  end

  -- The client's answer to an elicitation (a JSON-RPC response, or
  -- {result = } built from a retry's inputResponses), checked: it is the
  -- client's data.
  local function answered(m)
    if m.error ~= nil then
      local e = type(m.error) == "table" and m.error.message
      return nil, "the MCP client refused the elicitation: " .. tostring(e or "error"), "mcp_error"
    end
    local r = m.result
    if type(r) ~= "table" or (r.action ~= "accept" and r.action ~= "decline" and r.action ~= "cancel")
        or (r.content ~= nil and r.content ~= json.null and type(r.content) ~= "table") then
      return nil, "the MCP client answered the elicitation with a malformed result", "mcp_error"
    end
    local content = type(r.content) == "table" and r.content or nil
    return { action = r.action, content = content }
  end

  local function elicit(c, message, schema)
    if type(message) ~= "string" then error("elicit: 'message' must be a string", 3) end
    if type(schema) ~= "table" then error("elicit: 'schema' must be a table", 3) end
    if not c.can_elicit then
      return nil, "the MCP client did not declare the elicitation capability", "no_elicitation"
    end
    local m, e, code = ask_client(c, "elicitation/create", { message = message, requestedSchema = schema })
    if not m then return nil, e, code end
    return answered(m)
  end

  -- Sampling: the request checked (misuse raises at lvl), sent, and the
  -- client's answer checked.
  local function sample(c, req, lvl)
    local params
    if type(req) == "string" then
      params = { messages = { { role = "user", content = { type = "text", text = req } } }, maxTokens = 1000 }
    else
      local msgs = req.messages
      if type(msgs) ~= "table" or #msgs == 0 then error("luact.mcp.sample: 'messages' must be a non-empty list", lvl) end
      local out = {}
      for i, mm in ipairs(msgs) do
        if type(mm) ~= "table" or (mm.role ~= "user" and mm.role ~= "assistant") then
          error("luact.mcp.sample: each message needs role 'user' or 'assistant'", lvl)
        end
        local ct = item_of(mm.content, "luact.mcp.sample", lvl)
        if ct.type ~= "text" and ct.type ~= "image" and ct.type ~= "audio" then
          error("luact.mcp.sample: a message's content is text, image or audio", lvl)
        end
        out[i] = { role = mm.role, content = ct }
      end
      local mt = req.max_tokens or 1000
      if math.type(mt) ~= "integer" or mt < 1 then error("luact.mcp.sample: 'max_tokens' must be a positive integer", lvl) end
      if req.system ~= nil and type(req.system) ~= "string" then error("luact.mcp.sample: 'system' must be a string", lvl) end
      if req.temperature ~= nil and type(req.temperature) ~= "number" then error("luact.mcp.sample: 'temperature' must be a number", lvl) end
      if req.model_hint ~= nil and type(req.model_hint) ~= "string" then error("luact.mcp.sample: 'model_hint' must be a string", lvl) end
      if req.stop ~= nil then
        if type(req.stop) ~= "table" then error("luact.mcp.sample: 'stop' must be a list of strings", lvl) end
        for _, x in ipairs(req.stop) do
          if type(x) ~= "string" then error("luact.mcp.sample: 'stop' must be a list of strings", lvl) end
        end
      end
      params = { messages = out, maxTokens = mt, systemPrompt = req.system, temperature = req.temperature,
        stopSequences = req.stop, modelPreferences = req.model_hint and { hints = { { name = req.model_hint } } } }
    end
    if not c.can_sample then
      return nil, "the MCP client did not declare the sampling capability", "no_sampling"
    end
    local m, e, code = ask_client(c, "sampling/createMessage", params)
    if not m then return nil, e, code end
    if m.error ~= nil then
      local em = type(m.error) == "table" and m.error.message
      return nil, "the MCP client refused the sampling request: " .. tostring(em or "error"), "mcp_error"
    end
    local r = m.result
    local blocks = type(r) == "table" and r.content
    if type(blocks) == "table" and blocks.type ~= nil then blocks = { blocks } end
    if type(r) ~= "table" or (r.role ~= "assistant" and r.role ~= "user") or type(blocks) ~= "table" or #blocks == 0 then
      return nil, "the MCP client answered the sampling request with a malformed result", "mcp_error"
    end
    local text = {}
    for _, b in ipairs(blocks) do
      if type(b) ~= "table" or type(b.type) ~= "string" then
        return nil, "the MCP client answered the sampling request with a malformed result", "mcp_error"
      end
      if b.type == "text" then
        if type(b.text) ~= "string" then
          return nil, "the MCP client answered the sampling request with a malformed result", "mcp_error"
        end
        text[#text + 1] = b.text
      end
    end
    return { text = #text > 0 and table.concat(text) or nil, content = blocks, role = r.role,
      model = type(r.model) == "string" and r.model or nil,
      stop_reason = type(r.stopReason) == "string" and r.stopReason or nil }
  end

  -- A log message for call c: on the call's stream (HTTP: the answer
  -- becomes SSE), else the session's; filtered by the level it set.
  local function log(c, level, data, logger)
    local sess = c.sess
    if sess and sess.level and LEVELS[level] < sess.level then return false end
    local msg = { jsonrpc = "2.0", method = "notifications/message",
      params = { level = level, logger = logger, data = data } }
    if c.notify then c.notify(msg) return true end
    return push(sess, msg)
  end

  local function updated(uri)
    local n = 0
    local msg = { jsonrpc = "2.0", method = "notifications/resources/updated", params = { uri = uri } }
    if stdio_sess then
      if stdio_sess.subs[uri] then push(stdio_sess, msg) n = 1 end
      return n
    end
    for _, sess in pairs(sessions) do
      if sess.subs[uri] and push(sess, msg) then n = n + 1 end
    end
    return n
  end

  active = { call_here = call_here, log = log, sample = sample, updated = updated }
  local _ <close> = setmetatable({}, { __close = function() active = nil end })

  -- luact.ask (and so a workflow's ask_user) inside a served call whose
  -- client can elicit asks that client; anywhere else it is unchanged.
  local base_ask = luact.ask
  if type(base_ask) == "function" then
    luact.ask = function(prompt, o)
      local c = call_here()
      if c and not c.can_elicit and not http_mode then
        -- over stdio the server's stdin is the MCP channel: reading the
        -- answer there would take the client's next messages as input
        return nil, "the MCP client cannot be asked: it did not declare elicitation", "no_input"
      end
      if not (c and c.can_elicit) then return base_ask(prompt, o) end
      if prompt ~= nil and type(prompt) ~= "string" then error("luact.ask: 'prompt' must be a string", 2) end
      if o ~= nil and type(o) ~= "table" then error("luact.ask: options must be a table", 2) end
      if o and o.secret then
        -- the spec forbids asking for sensitive data with a form
        return nil, "a secret cannot be asked through MCP elicitation", "no_input"
      end
      local r, e, code = elicit(c, prompt or "", { type = "object",
        properties = { answer = { type = "string", title = "Answer" } }, required = { "answer" } })
      if not r then return nil, e, code end
      if r.action == "decline" then return nil, "the user declined to answer", "declined" end
      if r.action == "cancel" then return nil, "the user cancelled the question", "cancelled" end
      local a = r.content and r.content.answer
      if type(a) == "number" or type(a) == "boolean" then a = tostring(a) end
      if type(a) ~= "string" then
        return nil, "the MCP client accepted the elicitation without an answer", "mcp_error"
      end
      return a
    end
  end

  local function tool_list()
    local list = {}
    for _, t in ipairs(tools) do
      list[#list + 1] = { name = t.name, description = t.description, inputSchema = t.params,
        annotations = annotations(t.effect) }
    end
    return list
  end
  local info = { name = "luact", version = luact.version }
  local caps = { tools = { listChanged = false }, resources = { subscribe = true, listChanged = false },
    prompts = { listChanged = false }, logging = {}, completions = {} }

  -- The resource or template that serves uri (and the template's values).
  local function find_resource(uri)
    local r = decl.resource[uri]
    if r then return r end
    for _, t in ipairs(decl.templates) do
      local got = table.pack(uri:match(t.pattern))
      if got[1] ~= nil then
        local vars = {}
        for i, name in ipairs(t.vars) do vars[name] = got[i] end
        return t, vars
      end
    end
  end

  -- What a resource's read returned, as resources/read contents (nil,
  -- why when it is not content).
  local function contents_of(v, uri, mime)
    local list = v
    if type(v) == "string" then return { { uri = uri, mimeType = mime, text = v } } end
    if type(v) ~= "table" then return nil, "returned " .. type(v) end
    if v.text ~= nil or v.blob ~= nil then list = { v } end
    local out = {}
    for i, c in ipairs(list) do
      if type(c) ~= "table" then return nil, "returned a content that is not a table" end
      local u = c.uri == nil and uri or c.uri
      if type(u) ~= "string" then return nil, "returned a content whose uri is not a string" end
      local m = c.mime_type == nil and mime or c.mime_type
      if m ~= nil and type(m) ~= "string" then return nil, "returned a mime_type that is not a string" end
      if c.blob ~= nil then
        if not is_b64(c.blob) then return nil, "returned a blob that is not base64" end
        out[i] = { uri = u, mimeType = m, blob = c.blob }
      elseif type(c.text) == "string" then
        out[i] = { uri = u, mimeType = m, text = c.text }
      else
        return nil, "returned a content without text or blob"
      end
    end
    if #out == 0 then return nil, "returned no content" end
    return out
  end

  -- A prompt's get result as prompts/get messages.
  local function messages_of(v)
    if type(v) == "string" then return { { role = "user", content = { type = "text", text = v } } } end
    if type(v) ~= "table" or #v == 0 then return nil, "returned neither a string nor a list of messages" end
    local out = {}
    for i, mm in ipairs(v) do
      if type(mm) ~= "table" or (mm.role ~= "user" and mm.role ~= "assistant") then
        return nil, "returned a message without role 'user' or 'assistant'"
      end
      local ok, ct = pcall(item_of, mm.content, "message " .. i, 1)
      if not ok then return nil, tostring(ct) end
      out[i] = { role = mm.role, content = ct }
    end
    return out
  end

  -- A call's stream closed early (ctx.close_stream): its events are
  -- numbered and kept (at most 1000, the oldest dropped) until the answer
  -- went out on a GET that resumed it with Last-Event-ID.
  local function close_stream(call, reqid, retry_ms)
    local sess = call.sess
    if not (http_mode and sess and reqid and call.send) or call.mrtr or call.stream then return false end
    local st = { id = random_id():sub(1, 16), seq = 1, log = {}, target = nil, sess = sess }
    if not chan:event(reqid, "", st.id .. ":1", retry_ms) then return false end
    chan:reply(reqid, 200) -- the stream ends here (no body: nothing more on it)
    if sess.nstreams >= 64 then
      -- a client that never came back for its answers: the oldest goes
      local old
      for _, o in pairs(sess.streams) do if not old or o.born < old.born then old = o end end
      sess.streams[old.id] = nil
      sess.nstreams = sess.nstreams - 1
    end
    clock = clock + 1
    st.born = clock
    sess.streams[st.id] = st
    sess.nstreams = sess.nstreams + 1
    call.stream = st
    local function forget()
      if sess.streams[st.id] then sess.streams[st.id] = nil sess.nstreams = sess.nstreams - 1 end
    end
    local function emit(body, final)
      st.seq = st.seq + 1
      st.log[#st.log + 1] = { seq = st.seq, body = body, final = final }
      if #st.log > 1000 then table.remove(st.log, 1) end
      if st.target then
        if not chan:event(st.target, body, st.id .. ":" .. st.seq) then st.target = nil
        elseif final then chan:reply(st.target, 200) st.target = nil forget() end
      end
    end
    call.send = function(msg) emit(json.encode(msg), true) end
    call.notify = function(msg) emit(json.encode(msg)) end
    call.request = function(msg) emit(json.encode(msg)) return true end
    local l = live[call.key]
    if l then
      -- a cancel ends the resumed stream, if any, and forgets the call's
      l.drop = function()
        if st.target then chan:reply(st.target, 200) st.target = nil end
        forget()
      end
    end
    st.forget = forget
    return true
  end

  -- GET with Last-Event-ID naming a closed call stream: what it sent after
  -- that id, then the rest as it comes. false when the id names none.
  local function resume(sess, reqid, last_id)
    local sid_, n = last_id:match("^(%x+):(%d+)$")
    local st = sid_ and sess.streams[sid_]
    if not st then return false end
    n = tonumber(n) or 0
    if st.target then chan:reply(st.target, 200) end -- an older GET for it
    st.target = reqid
    local sent = false
    for _, e in ipairs(st.log) do
      if e.seq > n then
        if not chan:event(reqid, e.body, st.id .. ":" .. e.seq) then st.target = nil return true end
        sent = true
        if e.final then
          chan:reply(reqid, 200)
          st.target = nil
          st.forget()
          return true
        end
      end
    end
    if not sent and #st.log > 0 and st.log[#st.log].final then
      -- an id at or past the answer (a client's mistake): nothing will come
      chan:reply(reqid, 200)
      st.target = nil
      return true
    end
    -- nothing new yet: an event without data sends the headers now
    if not sent and not chan:event(reqid, "", st.id .. ":" .. st.seq) then st.target = nil end
    return true
  end

  -- One message; io.send(msg) delivers the answer (over stdio: a line;
  -- over HTTP: the body of this POST's response), io.notify(msg) a
  -- notification about it (over HTTP: an SSE event of this POST's
  -- response, which then carries the answer as its last event).
  local function handle(m, io_, sess)
    local send, notify, drop, request = io_.send, io_.notify, io_.drop, io_.request
    local function reply(result) send { jsonrpc = "2.0", id = m.id, result = result } end
    local function fail(code, message)
      send { jsonrpc = "2.0", id = m.id == nil and json.null or m.id, error = { code = code, message = message } }
    end
    local p = m.params
    if p == json.null then p = nil end
    if p ~= nil and type(p) ~= "table" then return fail(-32602, "params must be an object") end
    p = p or {}
    -- The request's work in a task of its own (a read, a prompt or a
    -- completion may wait like any run); fn returns the result, or nil,
    -- JSON-RPC code, message.
    local function in_task(fn)
      local key = (sess and sess.id or "") .. " " .. json.encode(m.id)
      local done = false
      local task = luact.spawn(function()
        local ok, r, code, msg = pcall(fn)
        done = true
        live[key] = nil
        if not ok then fail(-32603, tostring(r))
        elseif r == nil then fail(code or -32603, tostring(msg or "failed"))
        else reply(r) end
      end)
      if not done then live[key] = { task = task, drop = drop, sess = sess } end
    end
    local meth = m.method
    if meth == "initialize" then
      local want = p.protocolVersion
      local v = (VERSIONS[want] and want ~= "2026-07-28") and want or NEWEST_STATEFUL
      local cc = type(p.capabilities) == "table" and p.capabilities or {}
      last_caps = cc
      if stdio_sess then stdio_sess.caps = cc
      elseif sess then sess.caps = cc
      elseif io_.open_session then io_.open_session(cc) end
      reply { protocolVersion = v, capabilities = caps, serverInfo = info }
    elseif meth == "server/discover" then
      reply { supportedVersions = { "2026-07-28", "2025-11-25", "2025-06-18" },
        capabilities = caps, serverInfo = info }
    elseif meth == "ping" then
      reply {}
    elseif meth == "tools/list" then
      reply { tools = json.array(tool_list()) }
    elseif meth == "logging/setLevel" then
      if type(p.level) ~= "string" or LEVELS[p.level] == nil then
        return fail(-32602, "level must be one of debug, info, notice, warning, error, critical, alert, emergency")
      end
      if not sess then return fail(-32600, "logging/setLevel needs a session (initialize gives one)") end
      sess.level = LEVELS[p.level]
      reply {}
    elseif meth == "resources/list" then
      local list = {}
      for _, r in ipairs(decl.resources) do
        list[#list + 1] = { uri = r.uri, name = r.name, title = r.title, description = r.description,
          mimeType = r.mime_type }
      end
      reply { resources = json.array(list) }
    elseif meth == "resources/templates/list" then
      local list = {}
      for _, t in ipairs(decl.templates) do
        list[#list + 1] = { uriTemplate = t.uri_template, name = t.name, title = t.title,
          description = t.description, mimeType = t.mime_type }
      end
      reply { resourceTemplates = json.array(list) }
    elseif meth == "resources/read" then
      if type(p.uri) ~= "string" then return fail(-32602, "uri must be a string") end
      local uri = p.uri
      local r, vars = find_resource(uri)
      if not r then
        return send { jsonrpc = "2.0", id = m.id, error = { code = -32002, message = "Resource not found",
          data = { uri = #uri <= 256 and uri or uri:sub(1, 256) .. "..." } } }
      end
      if r.text then return reply { contents = { { uri = uri, mimeType = r.mime_type, text = r.text } } } end
      if r.blob then return reply { contents = { { uri = uri, mimeType = r.mime_type, blob = r.blob } } } end
      in_task(function()
        local v, e = r.read(uri, vars or {})
        if v == nil then return nil, -32603, "reading " .. r.name .. " failed: " .. tostring(e) end
        local c, why = contents_of(v, uri, r.mime_type)
        if not c then return nil, -32603, "resource " .. r.name .. " " .. why end
        return { contents = c }
      end)
    elseif meth == "resources/subscribe" or meth == "resources/unsubscribe" then
      if type(p.uri) ~= "string" then return fail(-32602, "uri must be a string") end
      if not sess then return fail(-32600, meth .. " needs a session (initialize gives one)") end
      if meth == "resources/unsubscribe" then
        if sess.subs[p.uri] then sess.subs[p.uri] = nil sess.nsubs = sess.nsubs - 1 end
        return reply {}
      end
      if not find_resource(p.uri) then
        return send { jsonrpc = "2.0", id = m.id, error = { code = -32002, message = "Resource not found" } }
      end
      if not sess.subs[p.uri] then
        if sess.nsubs >= 1000 then return fail(-32602, "too many subscriptions") end
        sess.subs[p.uri] = true
        sess.nsubs = sess.nsubs + 1
      end
      reply {}
    elseif meth == "prompts/list" then
      local list = {}
      for _, pr in ipairs(decl.prompts) do
        local args = {}
        for i, a in ipairs(pr.arguments) do
          args[i] = { name = a.name, description = a.description, required = a.required and true or nil }
        end
        list[#list + 1] = { name = pr.name, title = pr.title, description = pr.description,
          arguments = json.array(args) }
      end
      reply { prompts = json.array(list) }
    elseif meth == "prompts/get" then
      local pr = type(p.name) == "string" and decl.prompt[p.name]
      if not pr then return fail(-32602, "unknown prompt: " .. tostring(p.name):sub(1, 200)) end
      local args = p.arguments
      if args == nil or args == json.null then args = {} end
      if type(args) ~= "table" then return fail(-32602, "arguments must be an object") end
      for k, v in pairs(args) do
        if type(k) ~= "string" or type(v) ~= "string" then
          return fail(-32602, "arguments must map names to strings")
        end
      end
      for _, a in ipairs(pr.arguments) do
        if a.required and args[a.name] == nil then
          return fail(-32602, "missing required argument: " .. a.name)
        end
      end
      in_task(function()
        local v, e = pr.get(args)
        if v == nil then return nil, -32603, "prompt " .. pr.name .. " failed: " .. tostring(e) end
        local msgs, why = messages_of(v)
        if not msgs then return nil, -32603, "prompt " .. pr.name .. " " .. why end
        return { description = pr.description, messages = msgs }
      end)
    elseif meth == "completion/complete" then
      local ref, arg = p.ref, p.argument
      if type(ref) ~= "table" or type(arg) ~= "table" or type(arg.name) ~= "string" or type(arg.value) ~= "string" then
        return fail(-32602, "completion/complete needs ref and argument {name, value}")
      end
      local ctxargs = type(p.context) == "table" and type(p.context.arguments) == "table" and p.context.arguments or {}
      local target
      if ref.type == "ref/prompt" and type(ref.name) == "string" then
        target = decl.prompt[ref.name]
        if not target then return fail(-32602, "unknown prompt: " .. ref.name:sub(1, 200)) end
      elseif ref.type == "ref/resource" and type(ref.uri) == "string" then
        target = decl.template[ref.uri]
        if not target then return fail(-32602, "unknown resource template: " .. ref.uri:sub(1, 200)) end
      else
        return fail(-32602, "ref must be {type = \"ref/prompt\", name} or {type = \"ref/resource\", uri}")
      end
      local c = target.complete[arg.name]
      in_task(function()
        local values = {}
        if type(c) == "table" then
          for _, v in ipairs(c) do
            if type(v) == "string" and v:sub(1, #arg.value) == arg.value then values[#values + 1] = v end
          end
        elseif c then
          local got, e = c(arg.value, ctxargs)
          if got == nil then return nil, -32603, "completing " .. arg.name .. " failed: " .. tostring(e) end
          if type(got) ~= "table" then return nil, -32603, "completing " .. arg.name .. " returned " .. type(got) end
          for _, v in ipairs(got) do
            if type(v) ~= "string" then return nil, -32603, "completing " .. arg.name .. " returned a non-string" end
            values[#values + 1] = v
          end
        end
        local total = #values
        while #values > MAX_COMPLETIONS do values[#values] = nil end
        return { completion = { values = json.array(values), total = total, hasMore = total > MAX_COMPLETIONS } }
      end)
    elseif meth == "tools/call" then
      local t = by_name[p.name]
      if not t then return fail(-32602, "unknown tool: " .. tostring(p.name):sub(1, 200)) end
      local args = p.arguments
      if args == nil then args = {} end
      if type(args) ~= "table" then return fail(-32602, "arguments must be an object") end
      local key = (sess and sess.id or "") .. " " .. json.encode(m.id)
      local meta = type(p._meta) == "table" and p._meta or {}
      -- The capabilities: in the request (2026-07-28 carries them in
      -- _meta), else what the session's (or the last) initialize declared.
      local mcaps = meta["io.modelcontextprotocol/clientCapabilities"]
      local cc = sess and sess.caps or last_caps
      if type(mcaps) == "table" then cc = mcaps end
      local can = type(cc.elicitation) == "table"
      local can_sample = type(cc.sampling) == "table"
      local mrtr = (can or can_sample) and meta["io.modelcontextprotocol/protocolVersion"] == "2026-07-28"
      -- The request this call answers now: a 2026-07-28 retry binds the
      -- suspended run to the new request.
      local function bind(call)
        call.key, call.id, call.send, call.notify = key, m.id, send, notify
        call.token = meta.progressToken
        live[key] = { task = call.task, drop = drop, sess = sess }
      end
      if p.requestState ~= nil then
        local w = retries[p.requestState]
        if not w or not w.call.mrtr then return fail(-32602, "unknown or expired requestState") end
        retries[p.requestState] = nil
        local call = w.call
        bind(call)
        local res = type(p.inputResponses) == "table" and p.inputResponses[w.key]
        w.slot:put(type(res) == "table" and { result = res }
          or { error = { message = "no answer in inputResponses" } })
        return
      end
      local call = { can_elicit = can, can_sample = can_sample, mrtr = mrtr, request = request, sess = sess }
      -- Answers the current request (a retry moves it; the first answer
      -- ends it: a 2026-07-28 input_required, or the result).
      function call.answer(result)
        local k, out = call.key, call.send
        if not out then return end
        call.send, call.notify = nil, nil
        live[k] = nil
        out { jsonrpc = "2.0", id = call.id, result = result }
      end
      -- ctx.progress(done [, total [, message]]) reports to a client that
      -- asked (params._meta.progressToken); over HTTP the answer becomes an
      -- SSE stream at the first report.
      local ctx = { progress = function(done, total, message)
        if call.token == nil or not call.notify then return end
        call.notify { jsonrpc = "2.0", method = "notifications/progress",
          params = { progressToken = call.token, progress = done, total = total, message = message } }
      end }
      ctx.elicit = function(message, schema) return elicit(call, message, schema) end
      ctx.sample = function(req)
        if type(req) ~= "string" and type(req) ~= "table" then
          error("ctx.sample: expected a prompt string or a request table", 2)
        end
        return sample(call, req, 3)
      end
      -- ctx.close_stream([retry_ms]): over HTTP in a session, ends this
      -- call's response now (SEP-1699 polling): a first event with an id
      -- and retry tells the client to GET with Last-Event-ID after
      -- retry_ms; what the call sends from then on (progress, logs,
      -- requests, the answer) is kept and delivered on that GET.
      ctx.close_stream = function(retry_ms)
        if retry_ms == nil then retry_ms = 1000 end
        if math.type(retry_ms) ~= "integer" or retry_ms < 0 or retry_ms > 3600000 then
          error("ctx.close_stream: 'retry_ms' must be an integer from 0 to 3600000", 2)
        end
        return close_stream(call, io_.reqid, retry_ms)
      end
      ctx.log = function(level, data, logger)
        if LEVELS[level] == nil then error("ctx.log: 'level' must be one of debug, info, notice, warning, error, critical, alert, emergency", 2) end
        if data == nil then error("ctx.log: 'data' is required", 2) end
        return log(call, level, data, logger)
      end
      bind(call)
      call.task = luact.spawn(function()
        local me = task_path()
        calls[me] = call
        local _ <close> = setmetatable({}, { __close = function() calls[me] = nil end })
        local ok, r, e = pcall(t.call, t, args, ctx)
        if not ok then
          call.answer { content = { { type = "text", text = tostring(r) } }, isError = true }
        elseif r == nil then
          call.answer { content = { { type = "text", text = tostring(e or "failed") } }, isError = true }
        else
          call.answer(tool_result(r))
        end
      end)
      -- a task that answered at once (it ran until its first wait inside
      -- spawn) has no request left to track
      if call.send then live[key].task = call.task end
    else
      fail(-32601, "Method not found: " .. tostring(meth):sub(1, 200))
    end
  end

  local function notified(m, sess)
    if m.method == "notifications/cancelled" and type(m.params) == "table" then
      local key = (sess and sess.id or "") .. " " .. json.encode(m.params.requestId)
      local l = live[key]
      if l then
        live[key] = nil
        luact.kill(l.task)
        -- no JSON-RPC answer follows a cancel, but over HTTP the call's
        -- POST (suspended, or an SSE stream) must still end
        if l.drop then l.drop() end
      end
    end
  end

  -- One JSON-RPC message (a POST body, or a stdio line).
  local function dispatch(line, io_, sess)
    local ok, m = pcall(json.decode, line)
    if not ok or type(m) ~= "table" or m.jsonrpc ~= "2.0" then
      if http_mode then
        chan:reply(io_.reqid, 400, json.encode { jsonrpc = "2.0", id = json.null,
          error = { code = -32700, message = "parse error" } })
      else
        io_.send { jsonrpc = "2.0", id = json.null, error = { code = -32700, message = "parse error" } }
      end
    elseif m.method == nil or m.id == nil then
      -- a notification, or a response to a request of ours
      if m.method ~= nil then notified(m, sess)
      else
        -- a response to no question of ours (a wrong id, a late answer)
        -- is dropped; a second answer to one is too (put refuses it)
        local slot = type(m.id) == "string" and pending[m.id]
        if slot then slot:put(m) end
      end
      if http_mode then chan:reply(io_.reqid, 202) end
    elseif type(m.method) ~= "string" then
      io_.send { jsonrpc = "2.0", id = m.id, error = { code = -32600, message = "method must be a string" } }
    else
      handle(m, io_, sess)
    end
  end

  local NOT_FOUND = json.encode { jsonrpc = "2.0", id = json.null,
    error = { code = -32001, message = "Session not found" } }

  while true do
    local line, reqid, method, sid, last_id = chan:read()
    if not line then
      if reqid then io.stderr:write("luact mcp: " .. tostring(reqid) .. "\n") end
      break
    end
    if not http_mode then
      local function send(msg) chan:write(json.encode(msg)) end
      dispatch(line, { send = send, notify = send,
        request = function(msg) send(msg) return true end }, stdio_sess)
    else
      local sess = sid and sessions[sid]
      if sess then clock = clock + 1 sess.used = clock end
      if sid and not sess then
        -- an ended (or never given) session: the client must initialize again
        chan:reply(reqid, 404, NOT_FOUND)
      elseif method == "GET" then
        -- the session's stream for what the server sends outside a call
        if not sess then chan:reply(reqid, 405)
        elseif last_id and resume(sess, reqid, last_id) then
          -- a call's closed stream, resumed
        else
          -- one stream per session: a new GET (a reconnect) replaces the
          -- old one, whose client may be gone without our knowing
          if sess.get then chan:reply(sess.get, 200) end
          sess.get = reqid
          -- a reconnect gets what it missed (of the last 100 events)
          local n = last_id and tonumber(last_id:match("^" .. sess.id .. "%-(%d+)$"))
          local sent = false
          for _, e in ipairs(n and sess.glog or {}) do
            if e.n > n then
              if not chan:event(reqid, e.body, sess.id .. "-" .. e.n) then sess.get = nil break end
              sent = true
            end
          end
          if sess.get and not sent then
            -- a first event with an id and no data: the headers go out
            -- now, and the client knows the stream is resumable
            if not chan:event(reqid, "", sess.id .. "-" .. sess.eid) then sess.get = nil end
          end
        end
      elseif method == "DELETE" then
        if not sess then chan:reply(reqid, 405)
        else
          end_session(sess)
          chan:reply(reqid, 200)
        end
      else
        local io_ = { reqid = reqid,
          send = function(msg) chan:reply(reqid, 200, json.encode(msg)) end,
          notify = function(msg) chan:event(reqid, json.encode(msg)) end,
          drop = function() chan:reply(reqid, 202) end,
          request = function(msg) return chan:event(reqid, json.encode(msg)) end }
        if not sid then
          io_.open_session = function(cc)
            local s = open_session(cc)
            chan:session(reqid, s.id)
          end
        end
        dispatch(line, io_, sess)
      end
    end
  end
  if not http_mode then
    -- stdin closed: a client that wrote its requests and closed its end
    -- (printf ... | luact mcp serve) still gets every answer. What waits
    -- for the client (an elicitation, a sample, a 2026-07-28 retry) is
    -- told it will never come; the other calls run to their answer.
    stdin_closed = true
    local gone = { error = { message = "the client closed its input" } }
    for id, slot in pairs(pending) do pending[id] = nil slot:put(gone) end
    for st, w in pairs(retries) do retries[st] = nil w.slot:put(gone) end
    while true do
      local key, l = next(live)
      if not key then break end
      -- every call's task is this one's child (spawned by dispatch); one
      -- that cannot be waited for (already waited) is dropped
      pcall(luact.wait, l.task)
      if live[key] == l then live[key] = nil end
    end
  end
  for _, l in pairs(live) do luact.kill(l.task) end
  luact.ask = base_ask
  return true
end
