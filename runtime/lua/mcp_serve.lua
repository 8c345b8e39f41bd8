-- mcp_serve.lua: luact.mcp.serve(dir): luact's agents and tools as an MCP
-- server over stdio (`luact mcp serve AGENTS_DIR`). Every DIR/*.lua is run
-- once and returns a luact.tool, a list of them, or an agent
-- {name=, description=, params=, run=function(args) -> answer | result};
-- each becomes an MCP tool with its schema and annotations. Every call runs
-- in its own task: calls overlap, and notifications/cancelled kills one.
-- A call's luact.ask (or ctx.elicit) asks the client: elicitation/create,
-- or for 2026-07-28 an input_required result and the client's retry.
local luact, check_opts = ...

local mcp = luact.mcp
local stdio, http, new_slot, task_path = mcp._stdio, mcp._http, mcp._slot, mcp._path
mcp._stdio, mcp._http, mcp._slot, mcp._path = nil, nil, nil, nil
local json = luact.json

local VERSIONS = { ["2026-07-28"] = true, ["2025-11-25"] = true, ["2025-06-18"] = true }
local NEWEST_STATEFUL = "2025-11-25"

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

local function load_dir(dir)
  local root = assert(luact.files.root(dir))
  local entries = assert(root:list("."))
  table.sort(entries, function(a, b) return a.name < b.name end)
  local tools, by_name = {}, {}
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
        for _, t in ipairs(v) do
          if type(t) == "table" and not luact.is_tool(t) and t.run then t = agent_tool(t, file) end
          add(t, file)
        end
      else
        error(file .. ": must return a luact.tool, a list of them, or an agent {name=, run=}", 0)
      end
    end
  end
  return tools, by_name
end

local function text_of(v)
  if type(v) == "string" then return v end
  return json.encode(v)
end

--- luact.mcp.serve(dir [, {http = port, token =}]): serves until stdin
-- ends (stdio) or forever (HTTP).
function mcp.serve(dir, opts)
  if type(dir) ~= "string" then error("luact.mcp.serve: 'dir' must be a string", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("luact.mcp.serve: 'opts' must be a table", 2) end
  local bad = opts and check_opts(opts, "luact.mcp.serve")
  if bad then error(bad, 2) end
  local tools, by_name = load_dir(dir)
  local chan, err
  if opts and opts.http then
    if type(opts.http) ~= "number" then error("luact.mcp.serve: 'http' must be a port number", 2) end
    if type(opts.token) ~= "string" then error("luact.mcp.serve: 'token' is required with http", 2) end
    chan, err = http(math.floor(opts.http), opts.token)
    if not chan then return nil, err end
    io.stderr:write(string.format("luact mcp: listening on http://127.0.0.1:%d/mcp\n", chan:port()))
  else
    chan = stdio()
  end
  local running = {} -- request id (JSON text) -> task
  local ending = {}  -- request id (JSON text) -> ends its HTTP response

  -- Elicitation: a served call whose client declared the capability sends
  -- elicitation/create to it (stdio: a request line; HTTP: an event of the
  -- call's SSE stream, the answer coming back as a POST) and its task waits
  -- on a slot, suspended, until the response with that id arrives.
  local calls = {}    -- task path of a running call -> its call record
  local pending = {}  -- our request id -> slot
  local nreq = 0
  local init_elicit = false -- what the last initialize declared
  -- 2026-07-28 has no server-initiated requests: the call answers
  -- resultType "input_required" and the client sends tools/call again
  -- with the answers and our requestState. The run's task stays suspended
  -- in between; the retry is bound to it by that state.
  local retries = {}  -- requestState -> {slot =, call =, key =}

  local function call_here()
    local p = task_path()
    while p do
      local c = calls[p]
      if c then return c end
      p = p:match("^(.*)%.%d+$")
    end
  end

  local function elicit(c, message, schema)
    if type(message) ~= "string" then error("elicit: 'message' must be a string", 3) end
    if type(schema) ~= "table" then error("elicit: 'schema' must be a table", 3) end
    if not c.can_elicit then
      return nil, "the MCP client did not declare the elicitation capability", "no_elicitation"
    end
    nreq = nreq + 1
    local id = "luact-" .. nreq
    local slot = new_slot()
    if c.mrtr then
      if not c.send then return nil, "the call has no request to answer", "mcp_error" end
      -- a counter (unique) and randomness (not guessable by another client)
      local state = string.format("%s.%08x%08x", id, math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
      retries[state] = { slot = slot, call = c, key = id }
      local _ <close> = setmetatable({}, { __close = function() retries[state] = nil end })
      c.answer { resultType = "input_required", requestState = state,
        inputRequests = { [id] = { method = "elicitation/create",
          params = { message = message, requestedSchema = schema } } } }
      return c.answered(slot:wait())
    end
    pending[id] = slot
    -- also when the task is killed while it waits (timeout, cancel)
    local _ <close> = setmetatable({}, { __close = function() pending[id] = nil end })
    if not c.request { jsonrpc = "2.0", id = id, method = "elicitation/create",
        params = { message = message, requestedSchema = schema } } then
      return nil, "cannot send elicitation/create: the call's stream is closed", "mcp_error"
    end
    return c.answered(slot:wait())
  end

  -- The client's answer (a JSON-RPC response, or {result = } built from a
  -- retry's inputResponses), checked: it is the client's data.
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

  -- luact.ask (and so a workflow's ask_user) inside a served call whose
  -- client can elicit asks that client; anywhere else it is unchanged.
  local base_ask = luact.ask
  if type(base_ask) == "function" then
    luact.ask = function(prompt, o)
      local c = call_here()
      if c and not c.can_elicit and not (opts and opts.http) then
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
  local caps = { tools = { listChanged = false } }

  -- One message; send(msg) delivers the answer (over stdio: a line; over
  -- HTTP: the body of this POST's response), notify(msg) a notification
  -- about it (over HTTP: an SSE event of this POST's response, which then
  -- carries the answer as its last event).
  local function handle(m, send, notify, drop, request)
    local function reply(result) send { jsonrpc = "2.0", id = m.id, result = result } end
    local function fail(code, message)
      send { jsonrpc = "2.0", id = m.id == nil and json.null or m.id, error = { code = code, message = message } }
    end
    if m.method == "initialize" then
      local want = type(m.params) == "table" and m.params.protocolVersion
      local v = (VERSIONS[want] and want ~= "2026-07-28") and want or NEWEST_STATEFUL
      local cc = type(m.params) == "table" and m.params.capabilities
      init_elicit = type(cc) == "table" and type(cc.elicitation) == "table"
      reply { protocolVersion = v, capabilities = caps, serverInfo = info }
    elseif m.method == "server/discover" then
      reply { supportedVersions = { "2026-07-28", "2025-11-25", "2025-06-18" },
        capabilities = caps, serverInfo = info }
    elseif m.method == "ping" then
      reply {}
    elseif m.method == "tools/list" then
      reply { tools = tool_list() }
    elseif m.method == "tools/call" then
      local p = m.params
      local t = type(p) == "table" and by_name[p.name]
      if not t then return fail(-32602, "unknown tool: " .. tostring(type(p) == "table" and p.name)) end
      local args = p.arguments
      if args == nil then args = {} end
      if type(args) ~= "table" then return fail(-32602, "arguments must be an object") end
      local key = json.encode(m.id)
      local meta = type(p._meta) == "table" and p._meta or {}
      -- The capabilities: in the request (2026-07-28 carries them in
      -- _meta), else what initialize declared.
      local mcaps = meta["io.modelcontextprotocol/clientCapabilities"]
      local can = init_elicit
      if type(mcaps) == "table" then can = type(mcaps.elicitation) == "table" end
      local mrtr = can and meta["io.modelcontextprotocol/protocolVersion"] == "2026-07-28"
      -- The request this call answers now: a 2026-07-28 retry binds the
      -- suspended run to the new request.
      local function bind(call)
        call.key, call.id, call.send, call.notify = key, m.id, send, notify
        call.token = meta.progressToken
        ending[key], running[key] = drop, call.task
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
      local call = { can_elicit = can, mrtr = mrtr, request = request, answered = answered }
      -- Answers the current request (a retry moves it; the first answer
      -- ends it: a 2026-07-28 input_required, or the result).
      function call.answer(result)
        local k, out = call.key, call.send
        if not out then return end
        call.send, call.notify = nil, nil
        running[k], ending[k] = nil, nil
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
          local res = { content = { { type = "text", text = text_of(r) } } }
          if type(r) == "table" then res.structuredContent = r end
          call.answer(res)
        end
      end)
      -- a task that answered at once (it ran until its first wait inside
      -- spawn) has no request left to track
      if call.send then running[key] = call.task end
    else
      fail(-32601, "Method not found: " .. tostring(m.method))
    end
  end

  local function notified(m)
    if m.method == "notifications/cancelled" and type(m.params) == "table" then
      local key = json.encode(m.params.requestId)
      local task = running[key]
      if task then
        running[key] = nil
        luact.kill(task)
        -- no JSON-RPC answer follows a cancel, but over HTTP the call's
        -- POST (suspended, or an SSE stream) must still end
        local drop = ending[key]
        ending[key] = nil
        if drop then drop() end
      end
    end
  end

  while true do
    local line, reqid = chan:read()
    if not line then
      if reqid then io.stderr:write("luact mcp: " .. tostring(reqid) .. "\n") end
      break
    end
    local send, notify, drop, request
    if opts and opts.http then
      send = function(msg) chan:reply(reqid, 200, json.encode(msg)) end
      notify = function(msg) chan:event(reqid, json.encode(msg)) end
      drop = function() chan:reply(reqid, 202) end
      request = function(msg) return chan:event(reqid, json.encode(msg)) end
    else
      send = function(msg) chan:write(json.encode(msg)) end
      notify = send
      request = function(msg) send(msg) return true end
    end
    local ok, m = pcall(json.decode, line)
    if not ok or type(m) ~= "table" or m.jsonrpc ~= "2.0" then
      if opts and opts.http then
        chan:reply(reqid, 400, json.encode { jsonrpc = "2.0", id = json.null,
          error = { code = -32700, message = "parse error" } })
      else
        send { jsonrpc = "2.0", id = json.null, error = { code = -32700, message = "parse error" } }
      end
    elseif m.method == nil or m.id == nil then
      -- a notification, or a response to a request of ours
      if m.method ~= nil then notified(m)
      else
        -- a response to no question of ours (a wrong id, a late answer)
        -- is dropped; a second answer to one is too (put refuses it)
        local slot = type(m.id) == "string" and pending[m.id]
        if slot then slot:put(m) end
      end
      if opts and opts.http then chan:reply(reqid, 202) end
    else
      handle(m, send, notify, drop, request)
    end
  end
  for _, task in pairs(running) do luact.kill(task) end
  luact.ask = base_ask
  return true
end
