-- workflow.lua: luact.workflow{...}: a process as named states. In each
-- state the model may choose only among that state's actions (its tools,
-- ask_user, goto_<state>, finish); the runtime refuses anything else with a
-- message naming what is allowed, runs checks written in Lua before the
-- actions they guard, retries failing tools with the same idempotency key,
-- and records every step (state, action, args, result) in a transcript.
--
-- Why Lua and not a C engine: the loop is a few model calls per human turn;
-- its cost is the LLM round trip, and the parts that vary (checks, tools,
-- prompts, input) are Lua anyway. luact.llm.chat and luact.tool already do
-- the waiting and the argument checking in C.
--
-- Definition errors are found when luact.workflow is called, never during a
-- run: a transition to a state that does not exist, a state that cannot be
-- reached, a tool that is not declared, a check that is not a function.
-- Each error names the place (workflow, path in the definition) and the
-- reason, and is raised at the caller's line.
-- term: the terminal as the bindings see it (l_status.h): live() says
-- whether live lines go to stderr by default, clear() erases the status
-- line of the model calls in flight before a line is printed.
local luact, check_opts, term = ...

local json = luact.json

local RESERVED = { ask_user = true, finish = true }

local Workflow = {}
Workflow.__index = Workflow
Workflow.__name = "luact.Workflow"

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks, function(a, b) return tostring(a) < tostring(b) end)
  return ks
end

local function list_of(v)
  if v == nil then return {} end
  if type(v) == "string" then return { v } end
  return v
end

---------------------------------------------------------------------------
-- Definition: checked once, at load
---------------------------------------------------------------------------

-- Raises "luact.workflow(name): <place>: <reason>"; luact.workflow
-- re-raises it at its caller's line, however deep the helper was.
local DefError = {}
local function def_error(wname, place, fmt, ...)
  error(setmetatable({ msg = string.format("luact.workflow(%s): %s: " .. fmt, wname, place, ...) }, DefError))
end

local function is_callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

-- Normalises one state's definition into {tools = {name -> Tool}, order =
-- {action names}, transitions = {state names}, ask = bool, finish = bool,
-- checks = {...}}. Raises on every mistake, with the place.
local function compile_state(wname, sname, s, tools, state_names)
  local at = "states." .. sname
  if type(s) ~= "table" then def_error(wname, at, "must be a table") end
  local bad, key, hint = check_opts(s, "luact.workflow state")
  if bad then def_error(wname, at .. "." .. key, "unknown field%s", hint) end
  local st = {
    name = sname, description = s.description or s.instructions or "",
    tools = {}, tool_order = {}, transitions = {}, checks = {},
    ask = s.ask_user == true, finish = s.finish == true, retries = s.retries or 0,
    on_enter = s.on_enter,
  }
  if type(st.description) ~= "string" then def_error(wname, at .. ".description", "must be a string") end
  if s.ask_user ~= nil and type(s.ask_user) ~= "boolean" then def_error(wname, at .. ".ask_user", "must be a boolean") end
  if s.finish ~= nil and type(s.finish) ~= "boolean" then def_error(wname, at .. ".finish", "must be a boolean") end
  if math.type(st.retries) ~= "integer" or st.retries < 0 then
    def_error(wname, at .. ".retries", "must be an integer >= 0")
  end
  if st.on_enter ~= nil and not is_callable(st.on_enter) then
    def_error(wname, at .. ".on_enter", "must be a function(ctx)")
  end
  for i, tname in ipairs(list_of(s.tools)) do
    local place = string.format("%s.tools[%d]", at, i)
    if luact.is_tool(tname) then tname = tname.name end
    if type(tname) ~= "string" then def_error(wname, place, "must be a tool name") end
    if not tools[tname] then
      def_error(wname, place, "tool '%s' is not declared in the workflow's tools (declared: %s)",
        tname, #sorted_keys(tools) > 0 and table.concat(sorted_keys(tools), ", ") or "none")
    end
    if st.tools[tname] then def_error(wname, place, "tool '%s' is listed twice", tname) end
    st.tools[tname] = tools[tname]
    st.tool_order[#st.tool_order + 1] = tname
  end
  local seen = {}
  for i, to in ipairs(list_of(s.transitions)) do
    local place = string.format("%s.transitions[%d]", at, i)
    if type(to) ~= "string" then def_error(wname, place, "must be a state name") end
    if not state_names[to] then
      def_error(wname, place, "transition to '%s', but there is no such state (states: %s)",
        to, table.concat(sorted_keys(state_names), ", "))
    end
    if to == sname then def_error(wname, place, "a state cannot transition to itself") end
    if seen[to] then def_error(wname, place, "transition to '%s' is listed twice", to) end
    seen[to] = true
    st.transitions[#st.transitions + 1] = to
  end
  if #st.transitions == 0 and not st.finish then
    def_error(wname, at, "has no way out: give it transitions or finish = true")
  end
  -- The actions this state offers; checks may only name these.
  local actions = {}
  for _, t in ipairs(st.tool_order) do actions[t] = true end
  for _, to in ipairs(st.transitions) do actions["goto_" .. to] = true end
  if st.ask then actions.ask_user = true end
  if st.finish then actions.finish = true end
  st.actions = actions
  if s.checks ~= nil and type(s.checks) ~= "table" then def_error(wname, at .. ".checks", "must be a list") end
  for i, c in ipairs(s.checks or {}) do
    local place = string.format("%s.checks[%d]", at, i)
    if is_callable(c) then c = { fn = c } end
    if type(c) ~= "table" then def_error(wname, place, "must be a function or {fn=, message=, on=}") end
    if not is_callable(c.fn) then def_error(wname, place .. ".fn", "must be a function(ctx, args, action), got %s", type(c.fn)) end
    if c.message ~= nil and type(c.message) ~= "string" then def_error(wname, place .. ".message", "must be a string") end
    local on = {}
    if c.on == nil then
      -- Default: the check guards leaving the state (every goto_ and finish).
      for _, to in ipairs(st.transitions) do on["goto_" .. to] = true end
      if st.finish then on.finish = true end
    else
      for j, a in ipairs(list_of(c.on)) do
        if type(a) ~= "string" or not actions[a] then
          def_error(wname, string.format("%s.on[%d]", place, j),
            "'%s' is not an action of state %s (actions: %s)", tostring(a), sname,
            table.concat(sorted_keys(actions), ", "))
        end
        on[a] = true
      end
    end
    st.checks[#st.checks + 1] = { fn = c.fn, message = c.message, on = on, name = c.name or ("check " .. i) }
  end
  return st
end

--- luact.workflow{name=, initial=, states = {name = {...}}, tools = {...},
-- system=, model=, limits=, ...}: checks the whole definition and returns
-- a luact.Workflow; raises with the place and the reason when it is wrong.
local function build(def)
  if type(def) ~= "table" then def_error("?", "definition", "expected a table {name=, initial=, states=, tools=}") end
  local wname = def.name or "workflow"
  if type(wname) ~= "string" then def_error("?", "name", "must be a string") end
  local bad, key, hint = check_opts(def, "luact.workflow")
  if bad then def_error(wname, key, "unknown field%s", hint) end
  if type(def.limits) == "table" then
    bad, key, hint = check_opts(def.limits, "luact.workflow limits")
    if bad then def_error(wname, "limits." .. key, "unknown limit%s", hint) end
  end
  if type(def.states) ~= "table" or next(def.states) == nil then def_error(wname, "states", "must be a non-empty table {name = {...}}") end
  local tools = {}
  for k, t in pairs(def.tools or {}) do
    local place = "tools." .. tostring(k)
    if not luact.is_tool(t) then def_error(wname, place, "must be a luact.tool") end
    if type(k) == "string" and k ~= t.name then def_error(wname, place, "is named '%s' (the key must be the tool's name)", t.name) end
    if RESERVED[t.name] or t.name:match("^goto_") then
      def_error(wname, place, "'%s' is reserved for the workflow's own actions", t.name)
    end
    if tools[t.name] then def_error(wname, place, "a tool named '%s' is declared twice", t.name) end
    tools[t.name] = t
  end
  local state_names = {}
  for sname in pairs(def.states) do
    if type(sname) ~= "string" or not sname:match("^[%a][%w_]*$") or #sname > 40 then
      def_error(wname, "states." .. tostring(sname), "a state name must be an identifier (letters, digits, _)")
    end
    state_names[sname] = true
  end
  local initial = def.initial
  if type(initial) ~= "string" or not state_names[initial] then
    def_error(wname, "initial", "'%s' is not a state (states: %s)", tostring(initial),
      table.concat(sorted_keys(state_names), ", "))
  end
  local states = {}
  for _, sname in ipairs(sorted_keys(def.states)) do
    states[sname] = compile_state(wname, sname, def.states[sname], tools, state_names)
  end
  -- Every state must be reachable from the initial one.
  local reached, queue = { [initial] = true }, { initial }
  while #queue > 0 do
    local s = table.remove(queue, 1)
    for _, to in ipairs(states[s].transitions) do
      if not reached[to] then reached[to] = true; queue[#queue + 1] = to end
    end
  end
  for _, sname in ipairs(sorted_keys(states)) do
    if not reached[sname] then
      def_error(wname, "states." .. sname, "is unreachable from the initial state '%s'", initial)
    end
  end
  for _, f in ipairs { "system", "model", "on_event", "input", "on_finish" } do
    local v = def[f]
    if f == "system" and v ~= nil and type(v) ~= "string" and not is_callable(v) then
      def_error(wname, f, "must be a string or a function(ctx)")
    elseif f == "model" and v ~= nil and type(v) ~= "string" then
      def_error(wname, f, "must be a 'provider:model' string")
    elseif f ~= "system" and f ~= "model" and v ~= nil and not is_callable(v) then
      def_error(wname, f, "must be a function")
    end
  end
  return setmetatable({ name = wname, initial = initial, states = states, tools = tools, def = def }, Workflow)
end

function luact.workflow(def)
  local ok, wf = pcall(build, def)
  if ok then return wf end
  if getmetatable(wf) == DefError then error(wf.msg, 2) end
  error(wf, 0)
end

function luact.is_workflow(v) return getmetatable(v) == Workflow end

---------------------------------------------------------------------------
-- Run
---------------------------------------------------------------------------

-- The default input: journaled luact.ask when the runtime has it, else the
-- terminal. Looked up at each call: luact.ask may be added after load.
local function default_input(question)
  if type(luact.ask) == "function" then return luact.ask(question) end
  io.write(question, "\n> ")
  io.flush()
  return io.read("l")
end

local function clip(s, n)
  s = tostring(s)
  if #s > n then return s:sub(1, n) .. "..." end
  return s
end

-- The allowed actions of a state, as tool specs for luact.llm.chat, in a
-- fixed order: tools, ask_user, transitions, finish.
local function action_specs(wf, st)
  local specs = {}
  for _, tname in ipairs(st.tool_order) do
    local t = st.tools[tname]
    specs[#specs + 1] = { name = t.name, description = t.description, parameters = t.params }
  end
  if st.ask then
    specs[#specs + 1] = {
      name = "ask_user",
      description = "Say something to the customer and wait for their reply (a question, a confirmation, information).",
      parameters = { type = "object", properties = { question = { type = "string", minLength = 1 } },
                     required = { "question" }, additionalProperties = false },
    }
  end
  for _, to in ipairs(st.transitions) do
    local d = wf.states[to].description
    specs[#specs + 1] = {
      name = "goto_" .. to,
      description = "Move to the step '" .. to .. "'" .. (d ~= "" and (": " .. d) or "."),
      parameters = { type = "object", properties = { reason = { type = "string" } }, additionalProperties = false },
    }
  end
  if st.finish then
    specs[#specs + 1] = {
      name = "finish",
      description = "End the conversation; summary is the closing message shown to the customer.",
      parameters = { type = "object", properties = { summary = { type = "string", minLength = 1 } },
                     required = { "summary" }, additionalProperties = false },
    }
  end
  return specs
end

local function action_names(specs)
  local names = {}
  for i, s in ipairs(specs) do names[i] = s.name end
  return table.concat(names, ", ")
end

local ARG_SCHEMAS = {}
local function builtin_validator(name, spec)
  if not ARG_SCHEMAS[name] then ARG_SCHEMAS[name] = luact.schema.compile(spec.parameters) end
  return ARG_SCHEMAS[name]
end

-- The run's identity comes from the runtime (luact.run_id: restored when a
-- run resumes), never from unrecorded randomness: the idempotency keys of
-- the workflow's tools derive from it.
local function new_run_id()
  local id = luact.run_id
  if type(id) ~= "string" or id == "" then error("luact.workflow: the runtime gave no luact.run_id", 3) end
  return id
end

--- wf:run{input=, message=, data=, run_id=, on_event=, model=, base_url=,
-- api_key=, temperature=, limits = {steps=, invalid=}, retry_delay=}
-- -> result {status="finished"|"limit"|"failed"|"input_closed", reason=,
--    summary=, state=, transcript={...}, data=, usage={...}, run_id=}
-- A failure of the model or an exhausted limit is a result; misuse raises.
function Workflow:run(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("workflow:run: expected a table", 2) end
  local bad = check_opts(opts, "workflow:run")
    or (type(opts.limits) == "table" and check_opts(opts.limits, "luact.workflow limits"))
  if bad then error(bad, 2) end
  local def = self.def
  local model = opts.model or def.model
  if type(model) ~= "string" then error("workflow:run: 'model' is required (here or in the definition)", 2) end
  local input = opts.input or def.input or default_input
  if not is_callable(input) then error("workflow:run: 'input' must be a function(question) -> answer", 2) end
  local on_event = opts.on_event or def.on_event
  -- Live lines, like luact.react's: on a terminal unless --quiet, and
  -- unless the script shows the events itself (on_event).
  local verbose = opts.verbose
  if verbose == nil then verbose = def.verbose end
  if verbose == nil then verbose = on_event == nil and term ~= nil and term.live() end
  if verbose ~= nil and type(verbose) ~= "boolean" then error("workflow:run: 'verbose' must be a boolean", 2) end
  local limits = opts.limits or def.limits or {}
  local max_steps = limits.steps or 60
  local max_invalid = limits.invalid or 8
  local retry_delay = opts.retry_delay or def.retry_delay or 0.2
  local run_id = opts.run_id or new_run_id()

  local ctx = {
    run_id = run_id, workflow = self.name, data = opts.data or {}, state = self.initial,
    step = 0, visits = {}, transcript = {},
  }
  local usage = { llm_calls = 0, input = 0, output = 0, actions = 0, refused = 0,
                  check_failures = 0, tool_errors = 0, tool_retries = 0 }
  local transcript = ctx.transcript

  local function emit(ev)
    if verbose then
      if term then term.clear() end
      io.stderr:write(luact.workflow_format_event(ev), "\n")
    end
    if on_event then on_event(ev, ctx) end
  end
  local function record(entry)
    entry.step = ctx.step
    entry.state = entry.state or ctx.state
    transcript[#transcript + 1] = entry
    emit(entry)
    return entry
  end

  local function system_text()
    local st = self.states[ctx.state]
    local base = def.system
    if is_callable(base) then base = base(ctx) end
    local specs = action_specs(self, st)
    return string.format("%s\n\nCurrent step: %s.%s\nActions allowed in this step: %s.",
      base or "", ctx.state, st.description ~= "" and (" " .. st.description) or "",
      action_names(specs))
  end

  local messages = { { role = "system", content = "" } }
  if opts.message ~= nil then
    messages[#messages + 1] = { role = "user", content = tostring(opts.message) }
    record { kind = "user", text = tostring(opts.message) }
  end

  local function enter(sname)
    ctx.state = sname
    ctx.visits[sname] = (ctx.visits[sname] or 0) + 1
    local st = self.states[sname]
    if st.on_enter then st.on_enter(ctx) end
  end
  enter(self.initial)

  -- Runs the state's checks that guard `action`; nil when all hold, else
  -- the message of the first that fails.
  local function run_checks(st, action, args)
    for _, c in ipairs(st.checks) do
      if c.on[action] then
        local ok, a, b = pcall(c.fn, ctx, args, action)
        if not ok then return string.format("%s failed: %s", c.name, tostring(a)) end
        if not a then return b or c.message or (c.name .. " does not hold") end
      end
    end
    return nil
  end

  local result = { status = "limit", reason = "steps", run_id = run_id }
  local last_question -- what input() was last asked, asked again after a cancelled turn
  local invalid = 0
  local done = false

  -- One action the model asked for. Returns the tool message content.
  local function act(call, specs_by_name)
    ctx.step = ctx.step + 1
    usage.actions = usage.actions + 1
    local st = self.states[ctx.state]
    local name, args = call.name, call.arguments
    if not specs_by_name[name] then
      invalid = invalid + 1
      usage.refused = usage.refused + 1
      local msg = string.format("Refused: '%s' is not an allowed action in step %s. Allowed: %s.",
        tostring(name), ctx.state, action_names(specs_by_name._list))
      record { kind = "action", action = name, args = args or call.arguments_json, refused = true, error = msg }
      return { error = msg }
    end
    if args == nil then
      invalid = invalid + 1
      local msg = string.format("Refused: the arguments of %s are not valid JSON: %s", name, clip(call.arguments_json or "", 200))
      record { kind = "action", action = name, args = call.arguments_json, refused = true, error = msg }
      return { error = msg }
    end
    if not st.tools[name] then
      local v = builtin_validator(name, specs_by_name[name])
      local ok, verr = v:validate(args)
      if not ok then
        invalid = invalid + 1
        local msg = string.format("Refused: invalid arguments for %s: %s", name, verr)
        record { kind = "action", action = name, args = args, refused = true, error = msg }
        return { error = msg }
      end
    end
    local failed = run_checks(st, name, args)
    if failed then
      usage.check_failures = usage.check_failures + 1
      local msg = string.format("Not allowed yet (%s): %s", name, failed)
      record { kind = "action", action = name, args = args, refused = true, check = true, error = msg }
      return { error = msg }
    end

    if name == "ask_user" then
      last_question = args.question
      record { kind = "ask", action = name, args = args, text = args.question }
      local answer = input(args.question, ctx)
      if answer == nil then
        result = { status = "input_closed", reason = "the customer left (no more input)", run_id = run_id }
        done = true
        record { kind = "user", text = nil, closed = true }
        return { error = "the customer left" }
      end
      answer = tostring(answer)
      record { kind = "user", text = answer }
      return { customer_reply = answer }
    elseif name == "finish" then
      result = { status = "finished", summary = args.summary, run_id = run_id }
      done = true
      record { kind = "action", action = name, args = args, result = "finished" }
      if def.on_finish then def.on_finish(ctx, args.summary) end
      return { ok = true }
    elseif name:sub(1, 5) == "goto_" then
      local to = name:sub(6)
      local from = ctx.state
      enter(to)
      record { kind = "action", state = from, action = name, args = args, to = to, result = "now in " .. to }
      local nst = self.states[to]
      return { now_in_step = to, description = nst.description,
               allowed_actions = action_names(action_specs(self, nst)) }
    end

    -- A declared tool: same idempotency key on every retry of this step, so
    -- an idempotent service never does the work twice.
    local tool = st.tools[name]
    local tctx = setmetatable({ idempotency_key = string.format("%s-%d-%s", run_id, ctx.step, name),
                                attempt = 1 }, { __index = ctx })
    local res, emsg, code
    for attempt = 1, st.retries + 1 do
      tctx.attempt = attempt
      res, emsg, code = tool:call(args, tctx)
      if res ~= nil or code == "invalid_arguments" or tool.effect == "at_most_once" or attempt > st.retries then break end
      usage.tool_retries = usage.tool_retries + 1
      record { kind = "retry", action = name, attempt = attempt, error = emsg }
      if retry_delay > 0 then luact.sleep(retry_delay * (1 << (attempt - 1))) end
    end
    if res == nil then
      usage.tool_errors = usage.tool_errors + 1
      record { kind = "action", action = name, args = args, error = emsg, code = code,
               idempotency_key = tctx.idempotency_key }
      return { error = emsg }
    end
    -- State comes from the result, never from inside the tool's body: a
    -- replay answers the tool from the journal without running it, and
    -- apply rebuilds the same state from the same result.
    if tool.apply then tool.apply(ctx, res, args) end
    if tool.present then res = tool.present(res) end
    record { kind = "action", action = name, args = args, result = res, idempotency_key = tctx.idempotency_key }
    return res
  end

  while not done do
    if usage.actions >= max_steps then
      result = { status = "limit", reason = "steps: " .. max_steps .. " actions", run_id = run_id }
      break
    end
    if invalid >= max_invalid then
      result = { status = "limit", reason = "invalid: " .. invalid .. " refused or malformed actions", run_id = run_id }
      break
    end
    local st = self.states[ctx.state]
    local specs = action_specs(self, st)
    local by_name = { _list = specs }
    for _, s in ipairs(specs) do by_name[s.name] = s end
    messages[1].content = system_text()
    local r, err, code = luact.llm.chat {
      model = model, messages = messages, tools = specs, tool_choice = "required",
      temperature = opts.temperature or def.temperature or 0,
      base_url = opts.base_url or def.base_url, api_key = opts.api_key,
      retries = opts.retries, timeout = opts.timeout, max_tokens = opts.max_tokens,
    }
    usage.llm_calls = usage.llm_calls + 1
    if not r and code == "cancelled" then
      -- A person stopped the model's turn (Ctrl-C in luact chat): the turn
      -- is dropped and the conversation goes on with what they say next.
      record { kind = "cancelled" }
      local answer = input(last_question or "", ctx)
      if answer == nil then
        result = { status = "input_closed", reason = "the customer left (no more input)", run_id = run_id }
        break
      end
      record { kind = "user", text = tostring(answer) }
      messages[#messages + 1] = { role = "user", content = tostring(answer) }
      goto next_turn
    elseif not r then
      result = { status = "failed", reason = string.format("LLM call failed (%s): %s", code, err), run_id = run_id }
      break
    end
    usage.input = usage.input + (r.usage.input or 0)
    usage.output = usage.output + (r.usage.output or 0)
    local calls = r.tool_calls or {}
    if #calls == 0 then
      -- Plain text: when the state may talk to the customer, that is what
      -- the model meant; otherwise it must pick an action.
      messages[#messages + 1] = { role = "assistant", content = r.text or "" }
      if st.ask and r.text and r.text:match("%S") then
        ctx.step = ctx.step + 1
        usage.actions = usage.actions + 1
        last_question = r.text
        record { kind = "ask", action = "ask_user", args = { question = r.text }, text = r.text }
        local answer = input(r.text, ctx)
        if answer == nil then
          result = { status = "input_closed", reason = "the customer left (no more input)", run_id = run_id }
          break
        end
        record { kind = "user", text = tostring(answer) }
        messages[#messages + 1] = { role = "user", content = tostring(answer) }
      else
        invalid = invalid + 1
        usage.refused = usage.refused + 1
        local msg = string.format("Refused: reply with one of the allowed actions in step %s: %s.",
          ctx.state, action_names(specs))
        record { kind = "action", action = nil, args = r.text, refused = true, error = msg }
        messages[#messages + 1] = { role = "user", content = msg }
      end
    else
      messages[#messages + 1] = { role = "assistant", content = r.text, tool_calls = calls }
      local moved = false
      for _, c in ipairs(calls) do
        local content
        if done or moved then
          -- The allowed set changed (or the run ended) after an earlier call
          -- in this reply: later calls are not run.
          content = { error = "not run: an earlier action in the same reply changed the step; choose again" }
        else
          local before = ctx.state
          content = act(c, by_name)
          moved = ctx.state ~= before
        end
        messages[#messages + 1] = { role = "tool", tool_call_id = c.id, name = c.name, content = content }
      end
    end
    ::next_turn::
  end

  result.state = ctx.state
  result.transcript = transcript
  result.data = ctx.data
  result.usage = usage
  if verbose then
    if term then term.clear() end
    -- No price table here: the cost is unknown, and says so.
    io.stderr:write(string.format("workflow %s in step %s after %d action%s%s  (%d tok, cost unknown)\n",
      result.status, tostring(ctx.state), usage.actions, usage.actions == 1 and "" or "s",
      result.reason and (": " .. clip(result.reason, 200)) or "", usage.input + usage.output))
  end
  return result
end

--- A transcript in one line per entry, for logs and terminals.
function luact.workflow_format_event(ev)
  if ev.kind == "user" then
    return ev.closed and "customer: (left)" or ("customer: " .. tostring(ev.text))
  elseif ev.kind == "ask" then
    return "bot: " .. tostring(ev.text)
  elseif ev.kind == "cancelled" then
    return "  [" .. tostring(ev.state) .. "] (the model's turn was cancelled)"
  elseif ev.kind == "retry" then
    return string.format("  [%s] retry %s (attempt %d failed: %s)", ev.state, ev.action, ev.attempt, clip(ev.error, 120))
  end
  local args = type(ev.args) == "table" and (json.encode(ev.args) or "?") or tostring(ev.args or "")
  local out
  if ev.refused then out = "REFUSED: " .. clip(ev.error, 200)
  elseif ev.error then out = "error: " .. clip(ev.error, 200)
  elseif type(ev.result) == "table" then out = clip(json.encode(ev.result) or "?", 200)
  else out = tostring(ev.result) end
  return string.format("  [%s] %s %s -> %s", ev.state, tostring(ev.action), clip(args, 160), out)
end
