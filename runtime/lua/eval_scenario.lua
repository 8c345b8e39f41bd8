-- eval_scenario.lua: conversation tests for luact eval. A scenario is one
-- Lua file returning {description, turns = {user lines}, model = {scripted
-- replies} (omit for a real model), expect = {status, state, tool_calls,
-- trajectory, model_saw, check}, assert = {...}, plus any field the agent's
-- run function reads}. The eval file's `scenarios = {dir =, run =,
-- state =}` says how to run the agent and read its final state. Scripted
-- replies are served by a private lc-mockllm per scenario; the final state
-- (and what the mock saw) is read inside one journaled effect, so
-- --replay re-scores a conversation without the services it touched.
local luact, check_opts = ...

luact.eval = luact.eval or {}
local E = luact.eval
local json = luact.json

local function cfg_error(msg) error({ config = msg }, 0) end
local function shq(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- The mock's rules: one per scripted reply, in order, each used once.
local function rules(model)
  local out, k = {}, 0
  for i, step in ipairs(model) do
    if type(step) ~= "table" or type(step[1]) ~= "string" then
      cfg_error("scenario model[" .. i .. "] must be {\"text\", \"...\"} or {\"tool\", {args}}")
    end
    local reply
    if step[1] == "text" then
      reply = { text = step[2] }
    else
      k = k + 1
      local args = step[2]
      if args == nil or (type(args) == "table" and next(args) == nil) then args = json.null end
      reply = { tool_calls = { { id = "call_" .. k, name = step[1], arguments = args == json.null and {} or args } } }
    end
    out[#out + 1] = { times = 1, match = { path = "/v1/chat/completions" }, reply = { openai = reply } }
  end
  return out
end

local function start_mock(bin, rules_, dir)
  local path = dir .. "/mock.json"
  local f = assert(io.open(path, "wb"))
  -- empty args must be {} on the wire, not []
  f:write((json.encode(rules_):gsub('"arguments":%[%]', '"arguments":{}')))
  f:close()
  local p = io.popen("sh -c 'echo pid $$; exec \"$0\" --port 0 --script \"$1\"' " .. shq(bin) .. " " .. shq(path))
  local pid = p and (p:read("l") or ""):match("^pid (%d+)")
  local addr = p and (p:read("l") or ""):match("^listening on (%S+)")
  if not (pid and addr) then
    if p then p:close() end
    error("cannot start the mock LLM server " .. bin .. " (set scenarios.mock or LUACT_MOCKLLM)")
  end
  return { pipe = p, pid = pid, url = "http://" .. addr }
end

local function stop_mock(m)
  if not m then return end
  os.execute("kill " .. m.pid .. " 2>/dev/null")
  m.pipe:close()
end

local function list_files(spec, base)
  if type(spec.files) == "table" then
    local out = {}
    for i, f in ipairs(spec.files) do out[i] = f:sub(1, 1) == "/" and f or (base .. "/" .. f) end
    return out
  end
  local dir = spec.dir:sub(1, 1) == "/" and spec.dir or (base .. "/" .. spec.dir)
  local p = io.popen("ls -1 " .. shq(dir) .. " 2>/dev/null")
  local out = {}
  for l in p:lines() do if l:match("%.lua$") then out[#out + 1] = dir .. "/" .. l end end
  p:close()
  table.sort(out)
  if #out == 0 then cfg_error("scenarios: no .lua files in " .. dir) end
  return out
end

-- expect -> assertions
local function expectations(sc, id)
  local x = sc.expect or {}
  local bad = check_opts(x, "luact.eval expect")
  if bad then cfg_error("scenario " .. id .. ": " .. bad) end
  local l = {}
  if x.status then
    l[#l + 1] = { type = "lua", name = "status", value = function(_, _, res)
      return res.status == x.status, "status " .. tostring(res.status) .. (res.error and (": " .. tostring(res.error)) or "")
    end }
  end
  if x.state then l[#l + 1] = { type = "state", name = "final state", value = x.state } end
  if x.check then l[#l + 1] = { type = "state", name = "check", value = x.check } end
  if x.tool_calls then
    l[#l + 1] = { type = "trajectory", name = "tool calls", value = x.tool_calls, mode = x.mode or "superset",
                  args = x.args or "subset" }
  end
  if x.trajectory then l[#l + 1] = { type = "trajectory", name = "trajectory", value = x.trajectory, mode = "strict", args = x.args or "exact" } end
  if x.model_saw or x.model_never_saw then
    l[#l + 1] = { type = "state", name = "model saw", value = function(st)
      for _, n in ipairs(x.model_saw or {}) do
        if not (st.model_saw or {})[n] then return false, "the model never saw: " .. n end
      end
      for _, n in ipairs(x.model_never_saw or {}) do
        if (st.model_saw or {})[n] then return false, "the model saw: " .. n end
      end
      return true, "the model saw what it should"
    end }
  end
  if sc.model and x.all_used ~= false then
    l[#l + 1] = { type = "state", name = "script used up", value = function(st)
      if st.inputs_left ~= 0 then return false, st.inputs_left .. " customer lines left unused" end
      if st.unmatched and st.unmatched ~= 0 then return false, st.unmatched .. " model requests beyond the script" end
      if st.replies_left and st.replies_left ~= 0 then return false, st.replies_left .. " scripted replies unused" end
      return true, "every line and reply used"
    end }
  end
  for _, a in ipairs(sc.assert or {}) do l[#l + 1] = a end
  return l
end

function E.scenario_cases(cfg)
  local spec = cfg.scenarios
  local cases = {}
  for _, path in ipairs(list_files(spec, cfg.dir)) do
    local chunk, err = loadfile(path, "t")
    if not chunk then cfg_error(tostring(err)) end
    local ok, sc = pcall(chunk)
    if not ok or type(sc) ~= "table" then cfg_error(path .. ": must return a scenario table (" .. tostring(sc) .. ")") end
    local id = path:match("([^/]+)%.lua$")
    if type(sc.turns) ~= "table" or type(sc.turns[1]) ~= "string" then cfg_error(path .. ": 'turns' must list the user's lines") end
    cases[#cases + 1] = { id = id, description = sc.description, input = sc.turns[1], turns = sc.turns, scenario = sc,
                          tags = sc.tags, assert = expectations(sc, id) }
  end
  return cases
end

function E.scenario_targets(cfg)
  local spec = cfg.scenarios
  if type(spec) ~= "table" or type(spec.run) ~= "function" or (spec.dir == nil and spec.files == nil) then
    cfg_error("'scenarios' must be {dir = (or files =), run = function(scenario, env), state = function(scenario, env, result)}")
  end
  local bad = check_opts(spec, "luact.eval scenarios")
  if bad then cfg_error(bad) end
  local t = { name = spec.name or "agent", model = spec.model, version = { scenarios = spec.dir or spec.files } }
  t.run = function(case, ctx)
    local sc = case.scenario
    local tmp = io.popen("mktemp -d /tmp/luact-scenario-XXXXXX"):read("l")
    local env = { replay = ctx.replay, dir = tmp, turns = sc.turns, message = sc.turns[1], model = spec.model }
    local mock
    local ok, r = pcall(function()
      if sc.model then
        env.model = "openai:mock-gpt"
        if not ctx.replay then
          mock = start_mock(spec.mock or os.getenv("LUACT_MOCKLLM") or "build/lc-mockllm", rules(sc.model), tmp)
          env.base_url = mock.url .. "/v1"
        else
          env.base_url = "http://127.0.0.1:9/v1" -- never reached: every call is replayed
        end
      end
      local i = 1
      -- The next user line; nil once they are used up (asking again does
      -- not count as using one).
      env.input = function()
        if i >= #sc.turns then return nil end
        i = i + 1
        return sc.turns[i]
      end
      local res = spec.run(sc, env) or {}
      -- What the world holds afterwards, read once and journaled.
      res.state = luact.effect("eval", "scenario_state", { case = case.id }, "pure", function()
        local st = spec.state and spec.state(sc, env, res) or {}
        st.inputs_left = #sc.turns - i
        if mock then
          local s = luact.http.get(mock.url .. "/_stats")
          local stats = s and s.json or {}
          st.unmatched = stats.unmatched
          st.replies_left = #sc.model - ((stats.requests or 0) - (stats.unmatched or 0))
          -- What the model was sent: the needles it saw, the tools offered.
          local x = sc.expect or {}
          local q = luact.http.get(mock.url .. "/_requests")
          local log = q and q.body or ""
          local function saw(n) return log:find(json.encode(n):sub(2, -2), 1, true) ~= nil or log:find(n, 1, true) ~= nil end
          st.model_saw = {}
          for _, n in ipairs(x.model_saw or {}) do st.model_saw[n] = saw(n) end
          for _, n in ipairs(x.model_never_saw or {}) do st.model_saw[n] = saw(n) end
          local names, seen = {}, {}
          for _, rq in ipairs(q and q.json or {}) do
            for _, tl in ipairs(type(rq.body) == "table" and rq.body.tools or {}) do
              local nm = tl["function"] and tl["function"].name or tl.name
              if nm and not seen[nm] then seen[nm] = true names[#names + 1] = nm end
            end
          end
          table.sort(names)
          st.offered_tools = table.concat(names, ",")
        end
        return st
      end)
      return res
    end)
    stop_mock(mock)
    if tmp and tmp:match("^/tmp/luact%-scenario%-") then os.execute("rm -rf " .. shq(tmp)) end
    if not ok then error(r, 0) end
    return r
  end
  cfg.targets[#cfg.targets + 1] = t
  t.hash = E.version(t)
end
