-- eval_run.lua: luact eval's runner. Loads an eval file (targets under
-- test, dataset, default assertions, judge, repeat, concurrency), runs
-- every target x case x repetition as a task on the scheduler (luact.map
-- with the file's concurrency; task paths, hence journal ids, depend only
-- on the job's position, so a replay answers each from its own record),
-- scores them with eval_assert.lua and returns the run as one table (the
-- JSON report, docs/eval-report.schema.json).
local luact, check_opts = ...

luact.eval = luact.eval or {}
local E = luact.eval
local json = luact.json

local function cfg_error(msg) error({ config = msg }, 0) end

local function str(v)
  if v == nil then return "" end
  if type(v) == "string" then return v end
  if type(v) == "table" then return json.encode(v) or tostring(v) end
  return tostring(v)
end

---------------------------------------------------------------------------
-- datasets: JSONL and promptfoo-style CSV
---------------------------------------------------------------------------

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then cfg_error("cannot read " .. path .. ": " .. tostring(err)) end
  local s = f:read("a")
  f:close()
  return s
end

local function is_list(v, elem)
  if type(v) ~= "table" then return false end
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  if n ~= #v then return false end
  for _, x in ipairs(v) do if not elem(x) then return false end end
  return true
end
local function is_str(x) return type(x) == "string" end
local function is_id(x) return type(x) == "string" or math.type(x) == "integer" end
local function is_call(x) return type(x) == "string" or (type(x) == "table" and (type(x.name) == "string" or type(x[1]) == "string")) end

-- A case from a dataset is data: every field it has must have the type
-- the runner reads, so a malformed case is a configuration error (exit
-- 2) at load time, never a failure in the middle of a run.
local function check_case(c, where)
  if type(c) ~= "table" then cfg_error(where .. ": a case must be an object") end
  local bad = check_opts(c, "luact.eval case")
  if bad then cfg_error(where .. ": " .. bad) end
  local function want(k, ok, what) if c[k] ~= nil and not ok then cfg_error(where .. ": '" .. k .. "' must be " .. what) end end
  want("id", is_id(c.id), "a string or an integer")
  want("vars", type(c.vars) == "table", "an object")
  want("tags", is_list(c.tags, is_str), "a list of strings")
  want("context_ids", is_list(c.context_ids, is_id), "a list of chunk ids")
  want("context", is_str(c.context) or is_list(c.context, is_str), "a string or a list of strings")
  want("trajectory", is_list(c.trajectory, is_call), "a list of calls ({name =, args =})")
  want("turns", is_list(c.turns, is_str), "a list of strings")
  want("assert", is_list(c.assert, function(x) return type(x) == "table" end), "a list of assertions")
  want("threshold", type(c.threshold) == "number" and c.threshold >= 0 and c.threshold <= 1, "a score from 0 to 1")
  want("description", is_str(c.description), "a string")
  want("rubric", is_str(c.rubric), "a string")
  want("model", is_str(c.model), "a string (provider:model)")
  want("prefix", is_str(c.prefix), "a string")
  want("suffix", is_str(c.suffix), "a string")
  return c
end

--- luact.eval.load_jsonl(path) -> cases
function E.load_jsonl(path)
  local cases, n = {}, 0
  -- every line counts (blank ones too), so an error names the line an
  -- editor shows
  for line in (read_file(path) .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if line:match("%S") then
      local c, err = json.decode(line)
      if c == nil then cfg_error(string.format("%s line %d: %s", path, n, tostring(err))) end
      cases[#cases + 1] = check_case(c, path .. " line " .. n)
    end
  end
  return cases
end

-- RFC 4180: quoted fields, doubled quotes, newlines inside quotes; CRLF or
-- LF. A field is found with string.find, not byte by byte: a huge field
-- costs one copy. An unterminated quote or text after a closing quote is
-- a configuration error (promptfoo's CSV reader refuses both too).
local function csv_rows(text, path)
  if text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end -- a spreadsheet's UTF-8 BOM
  local rows, row, i, n, line = {}, {}, 1, #text, 1
  local function bad(msg) cfg_error(string.format("%s line %d: %s", path, line, msg)) end
  while i <= n do
    local field
    if text:byte(i) == 34 then -- '"'
      local parts, j = {}, i + 1
      local start_line = line
      while true do
        local q = text:find('"', j, true)
        if not q then line = start_line bad("unterminated quoted field") end
        parts[#parts + 1] = text:sub(j, q - 1)
        if text:byte(q + 1) == 34 then parts[#parts + 1] = '"' j = q + 2
        else i = q + 1 break end
      end
      field = table.concat(parts)
      for _ in field:gmatch("\n") do line = line + 1 end
      local c = text:byte(i)
      if c ~= nil and c ~= 44 and c ~= 10 and c ~= 13 then bad("text after a closing quote") end
    else
      local e = text:find("[,\r\n]", i) or (n + 1)
      field = text:sub(i, e - 1)
      i = e
    end
    row[#row + 1] = field
    local c = text:byte(i)
    if c == 44 then
      i = i + 1
      if i > n then row[#row + 1] = "" end
    else
      -- end of a record: \r\n, \n, \r, or the end of the text
      if c == 13 and text:byte(i + 1) == 10 then i = i + 1 end
      i = i + 1
      rows[#rows + 1] = { fields = row, line = line }
      row = {}
      line = line + 1
    end
  end
  if #row > 0 then rows[#rows + 1] = { fields = row, line = line } end
  return rows
end

-- promptfoo's __expected forms (its csv.ts): "type:value", "not-type:value",
-- "type(threshold):value", a bare type (is-json), or plain text (equals).
-- promptfoo's names map onto luact's; its types luact has no equivalent
-- for (JavaScript, Python, embeddings similarity, ...) are errors, never a
-- silent equals.
local CSV_TYPES = {
  equals = "equals", contains = "contains", icontains = "icontains", ["contains-any"] = "contains-any",
  ["contains-all"] = "contains-all", ["icontains-any"] = "icontains-any", ["icontains-all"] = "icontains-all",
  regex = "regex", ["starts-with"] = "starts-with", ["is-json"] = "is-json", levenshtein = "levenshtein",
  ["rouge-l"] = "rouge-l", bleu = "bleu", ["llm-rubric"] = "llm-rubric", grade = "llm-rubric",
  faithfulness = "faithfulness", ["context-faithfulness"] = "faithfulness", ["answer-relevancy"] = "answer-relevancy",
  ["answer-relevance"] = "answer-relevancy", ["context-recall"] = "context-recall",
  ["context-relevance"] = "context-relevance", latency = "latency", cost = "cost", tokens = "tokens", steps = "steps",
}
local CSV_UNSUPPORTED = {
  javascript = true, fn = true, eval = true, python = true, similar = true, ["contains-json"] = true,
  ["is-sql"] = true, ["contains-sql"] = true, ["is-xml"] = true, ["contains-xml"] = true, ["rouge-n"] = true,
  classifier = true, perplexity = true, ["perplexity-score"] = true, factuality = true,
  ["model-graded-closedqa"] = true, ["model-graded-factuality"] = true, moderation = true, webhook = true,
  ["select-best"] = true, ["g-eval"] = true, ["is-valid-openai-tools-call"] = true,
  ["is-valid-openai-function-call"] = true, ["is-refusal"] = true, ["is-html"] = true, ["contains-html"] = true,
  ["finish-reason"] = true, ["is-valid-function-call"] = true,
}
local function expected_assert(s, where)
  if s:sub(1, 7) == "file://" then cfg_error(where .. ": '" .. s:sub(1, 40) .. "': file:// assertions (JavaScript, Python) are not supported") end
  local neg, rest = "", s
  if rest:sub(1, 4) == "not-" then neg, rest = "not-", rest:sub(5) end
  local name, tail = rest:match("^([%a][%w%-]*)(.*)$")
  if name then
    local th
    local t2, after = tail:match("^%(([%d%.]+)%)(.*)$")
    if t2 then th, tail = tonumber(t2), after end
    if tail == "" or tail:sub(1, 1) == ":" then
      if CSV_UNSUPPORTED[name] then
        cfg_error(where .. ": promptfoo assertion '" .. name .. "' has no luact equivalent (see docs/eval.md)")
      end
      local t = CSV_TYPES[name]
      if t then
        local v = tail:sub(2):gsub("^%s+", "")
        local a = { type = neg .. t }
        if t:match("contains%-") then
          local l = {}
          for x in v:gmatch("[^,]+") do l[#l + 1] = (x:gsub("^%s+", ""):gsub("%s+$", "")) end
          a.value = l
        elseif t == "latency" or t == "cost" or t == "tokens" or t == "steps" then
          -- "latency(5000)" (promptfoo) or "latency: 5000"
          a.threshold = th
          if v ~= "" then a.value = tonumber(v) if not a.value then cfg_error(where .. ": " .. t .. " needs a number") end end
        elseif t == "is-json" then
          if v ~= "" then
            local sch = json.decode(v)
            if type(sch) ~= "table" then cfg_error(where .. ": is-json: the value must be a JSON schema") end
            a.schema = sch
          end
        elseif (t == "rouge-l" or t == "bleu") and not th and v:match("^[%d%.]+%s*:") then
          -- luact's older form "rouge-l: 0.5: reference"
          local t3, ref = v:match("^([%d%.]+)%s*:%s*(.*)$")
          a.threshold, a.value = tonumber(t3), ref
        else
          a.threshold = th
          if v ~= "" then a.value = v end
        end
        return a
      end
    end
  end
  for _, p in ipairs({ "fn:", "eval:" }) do
    if s:sub(1, #p) == p then cfg_error(where .. ": JavaScript assertions ('" .. p .. "') are not supported") end
  end
  return { type = "equals", value = s }
end
E.csv_assertion = function(s) return expected_assert(s, "__expected") end

--- luact.eval.load_csv(path) -> cases: one per row; columns are vars,
-- __expected* columns assertions, __description / __threshold / __metric /
-- __prefix / __suffix as promptfoo reads them.
function E.load_csv(path)
  local rows = csv_rows(read_file(path), path)
  local head = table.remove(rows, 1)
  if not head then cfg_error(path .. ": empty CSV") end
  head = head.fields
  local seen = {}
  for i, h in ipairs(head) do
    if h == "" then cfg_error(path .. ": column " .. i .. " has no name") end
    if seen[h] and not h:match("^__expected") then cfg_error(path .. ": two columns named '" .. h .. "'") end
    seen[h] = true
  end
  local cases = {}
  for r, rec in ipairs(rows) do
    local row = rec.fields
    if not (#row == 1 and row[1] == "") then
      local where = path .. " line " .. rec.line
      if #row ~= #head then
        cfg_error(string.format("%s: %d fields, the header has %d", where, #row, #head))
      end
      local c = { id = tostring(r), vars = {}, assert = {} }
      local metric
      for i, h in ipairs(head) do
        local v = row[i]
        if h:match("^__expected") then
          if v:match("%S") then c.assert[#c.assert + 1] = expected_assert(v, where) end
        elseif h == "__description" then c.description = v ~= "" and v or nil
        elseif h == "__threshold" then
          if v ~= "" then
            c.threshold = tonumber(v)
            if not c.threshold then cfg_error(where .. ": __threshold must be a number") end
          end
        elseif h == "__metric" then metric = v ~= "" and v or nil
        elseif h == "__prefix" then c.prefix = v
        elseif h == "__suffix" then c.suffix = v
        elseif h:sub(1, 2) == "__" then cfg_error(where .. ": unknown column '" .. h .. "'")
        else c.vars[h] = v end
      end
      for _, a in ipairs(c.assert) do a.metric = metric end
      cases[#cases + 1] = check_case(c, where)
    end
  end
  return cases
end

local function dataset(spec, dir)
  if type(spec) == "table" then
    for i, c in ipairs(spec) do check_case(c, "dataset[" .. i .. "]") end
    return spec
  end
  if type(spec) ~= "string" then cfg_error("'dataset' must be a path (.jsonl or .csv) or a list of cases") end
  local path = spec:sub(1, 1) == "/" and spec or (dir .. "/" .. spec)
  if spec:match("%.csv$") then return E.load_csv(path) end
  return E.load_jsonl(path)
end

---------------------------------------------------------------------------
-- targets and versions
---------------------------------------------------------------------------

local function render(t, vars)
  return (t:gsub("{{%s*([%w_%.]+)%s*}}", function(k)
    local v = vars[k]
    if v == nil then return "" end
    return str(v)
  end))
end

-- A tool as its schema: name, description, parameters (its function is
-- not what the model sees).
local function tool_schema(t)
  return { name = t.name, description = t.description, params = t.params or t.parameters }
end
local function is_tool(v) return type(v) == "table" and type(v.name) == "string" and type(v.fn) == "function" end

-- The canonical value of a definition for hashing: tools by their schema,
-- functions by their stripped bytecode (no file names or lines), tables
-- with mixed keys as objects with string keys, cycles cut.
local function canon(v, seen, depth)
  local tv = type(v)
  if tv == "function" then
    local ok, code = pcall(string.dump, v, true)
    return "fn:" .. (ok and E.sha256(code) or "C")
  elseif tv == "table" then
    if is_tool(v) then return tool_schema(v) end
    if luact.is_workflow and luact.is_workflow(v) then return canon(v.def, seen, depth) end
    seen = seen or {}
    depth = depth or 0
    if seen[v] or depth > 32 then return "<cycle>" end
    seen[v] = true
    local out, n = {}, 0
    for _ in pairs(v) do n = n + 1 end
    local list = n == #v
    for k, x in pairs(v) do
      local c = canon(x, seen, depth + 1)
      if list then out[k] = c else out[tostring(k)] = c end
    end
    seen[v] = nil
    if n == 0 then return json.array({}) end
    return out
  elseif tv == "userdata" or tv == "thread" then
    return "<" .. tv .. ">"
  end
  return v
end

--- version(target) -> hash: SHA-256 of the canonical JSON of what the
-- target sends and how: its template, system prompt, model, parameters,
-- tool schemas; a ReAct target's whole options (instructions, limits,
-- tools), a workflow's definition (states, instructions, tools), a Lua
-- target's code.
function E.version(t)
  local v = {
    template = t.prompt,
    system = t.system,
    model = t.model,
    params = canon(t.params or {}),
    tools = canon(t.tools or {}),
    react = t.react and canon(t.react) or nil,
    workflow = t.workflow and canon(t.workflow) or nil,
    version = canon(t.version),
    -- a Lua target's code (stripped bytecode: no file names or lines)
    code = t.run and canon(t.run) or nil,
  }
  return E.sha256(assert(json.encode(v)))
end

local function normalize_target(t, i, providers)
  if type(t) ~= "table" then cfg_error("targets[" .. i .. "] must be a table") end
  local bad = check_opts(t, "luact.eval target")
  if bad then cfg_error("targets[" .. i .. "]: " .. bad) end
  -- A ReAct target may have a prompt: the template of its question.
  local kinds = (t.react and 1 or 0) + (t.run and 1 or 0) + (t.workflow and 1 or 0)
  if kinds == 0 and t.prompt then kinds = 1 end
  if kinds ~= 1 or (t.run and t.prompt) then
    cfg_error("targets[" .. i .. "]: give one of prompt, react or workflow (each with an optional prompt " ..
      "template), run")
  end
  if t.workflow and not luact.is_workflow(t.workflow) then
    cfg_error("targets[" .. i .. "]: 'workflow' must be a luact.workflow")
  end
  if t.run and type(t.run) ~= "function" then cfg_error("targets[" .. i .. "]: 'run' must be a function(case, ctx)") end
  local out = {}
  if t.model == nil and providers and (t.prompt or t.react) then
    for _, p in ipairs(providers) do
      local c = {}
      for k, v in pairs(t) do c[k] = v end
      c.model = p
      c.name = (t.name or ("target" .. i)) .. "@" .. p
      out[#out + 1] = c
    end
  else
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    c.name = t.name or ("target" .. i)
    out[1] = c
  end
  for _, c in ipairs(out) do c.hash = E.version(c) end
  return out
end

local function now_ms() return luact.now() * 1000 end

-- Runs one target on one case: {output, trajectory, usage, cost,
-- latency_ms, steps, retrieved, context, state, status, error}.
local function run_target(t, case, env)
  local vars = {}
  for k, v in pairs(case.vars or {}) do vars[k] = v end
  if case.input ~= nil then vars.input = case.input end
  local res = { usage = { input = 0, output = 0 } }
  if t.prompt and not t.react and not t.workflow then
    local o = {}
    for k, v in pairs(t.params or {}) do o[k] = v end
    o.model = case.model or t.model
    if not o.model then cfg_error("target " .. t.name .. ": no model") end
    o.system = t.system and render(t.system, vars) or nil
    -- promptfoo's __prefix / __suffix columns
    o.prompt = (case.prefix or "") .. render(t.prompt, vars) .. (case.suffix or "")
    o.tools = t.tools
    local r, err, code = luact.llm.chat(o)
    if not r then
      res.status, res.error = "error", str(err) .. " (" .. str(code) .. ")"
      return res
    end
    res.output = r.text or ""
    res.latency_ms = r.latency_ms
    res.usage = { input = r.usage.input or 0, output = r.usage.output or 0 }
    res.cost = E.price(env.prices, o.model, r.usage)
    res.trajectory = {}
    for _, c in ipairs(r.tool_calls or {}) do res.trajectory[#res.trajectory + 1] = { name = c.name, args = c.arguments } end
    res.steps = 1
    res.status = "finished"
    return res
  end
  local t0 = now_ms()
  if t.workflow then
    -- The first user message is the rendered prompt (or the input); later
    -- ones come from case.turns, then the input is closed.
    local turns, i = case.turns or {}, 1
    local r = t.workflow:run { message = t.prompt and render(t.prompt, vars) or str(case.input),
      model = case.model or t.model, input = function() i = i + 1 return turns[i] end,
      temperature = t.params and t.params.temperature }
    res.output, res.status = r.summary or r.reason, r.status
    if r.status ~= "finished" then res.error = r.reason end
    res.usage = { input = r.usage.input or 0, output = r.usage.output or 0 }
    res.cost = E.price(env.prices, case.model or t.model, r.usage)
    res.trajectory = {}
    for _, e in ipairs(r.transcript or {}) do
      -- every action the model took and the workflow accepted (asking the
      -- user is one)
      if (e.kind == "action" or e.kind == "ask") and not e.refused then
        res.trajectory[#res.trajectory + 1] = { name = e.action, args = e.args }
      end
    end
    res.steps = r.usage.actions
    res.state = { state = r.state, data = r.data }
  elseif t.react then
    local o = {}
    for k, v in pairs(t.react) do o[k] = v end
    o.model = o.model or case.model or t.model
    o.question = t.prompt and render(t.prompt, vars) or str(case.input)
    o.prices = o.prices or env.prices
    o.verbose = false
    local r = luact.react(o)
    res.output = r.answer
    res.status = r.status
    if r.status ~= "finished" then res.error = r.reason end
    res.usage = { input = r.usage.input or 0, output = r.usage.output or 0 }
    res.cost = r.cost
    res.trajectory = {}
    for _, s in ipairs(r.steps or {}) do
      if s.action and s.action ~= "finish" then res.trajectory[#res.trajectory + 1] = { name = s.action, args = s.args } end
    end
    res.steps = #(r.steps or {})
  else
    local ok, r = pcall(t.run, case, { vars = vars, render = render, prices = env.prices, model = t.model,
                                       replay = env.replay, dir = env.dir })
    if not ok then
      if type(r) == "table" and r.config then error(r, 0) end
      res.status, res.error = "error", str(r)
      res.latency_ms = now_ms() - t0
      return res
    end
    if type(r) ~= "table" then r = { output = r } end
    for k, v in pairs(r) do res[k] = v end
    res.usage = res.usage or { input = 0, output = 0 }
    res.status = res.status or "finished"
  end
  res.latency_ms = res.latency_ms or (now_ms() - t0)
  return res
end

-- What a target, a stored run or a replayed journal says about a result
-- is data: each field the assertions and reports read gets its type here
-- (numbers finite and not negative, tokens whole, calls with a name), so
-- a crafted journal or a target returning odd values cannot make a report
-- that breaks its schema or a summary that raises.
local function tokens(v)
  v = tonumber(v)
  if not v or v ~= v or v < 0 then return 0 end
  if v >= 2 ^ 53 then return 2 ^ 53 // 1 end
  return math.floor(v)
end
local function finite_nonneg(v)
  v = tonumber(v)
  if not v or v ~= v or v < 0 or v == math.huge then return nil end
  return v
end
local function normalize_result(res)
  res.latency_ms = finite_nonneg(res.latency_ms)
  res.cost = finite_nonneg(res.cost) or 0
  local u = type(res.usage) == "table" and res.usage or {}
  res.usage = { input = tokens(u.input), output = tokens(u.output) }
  local st = finite_nonneg(res.steps)
  res.steps = st and math.tointeger(math.floor(math.min(st, 2 ^ 31))) or nil
  if type(res.trajectory) == "table" then
    local tr = {}
    for _, c in ipairs(res.trajectory) do
      if type(c) == "string" then tr[#tr + 1] = { name = c }
      elseif type(c) == "table" and type(c.name or c[1]) == "string" then
        local args = c.args or c.arguments or c[2]
        tr[#tr + 1] = { name = c.name or c[1], args = (type(args) == "table" or type(args) == "string") and args or nil }
      end
    end
    res.trajectory = tr
  else
    res.trajectory = nil
  end
  if type(res.retrieved) == "table" then
    local ids = {}
    for _, id in ipairs(res.retrieved) do if type(id) == "string" or math.type(id) == "integer" then ids[#ids + 1] = id end end
    res.retrieved = ids
  else
    res.retrieved = nil
  end
  if type(res.context) == "string" then res.context = { res.context }
  elseif type(res.context) == "table" then
    local cs = {}
    for _, x in ipairs(res.context) do cs[#cs + 1] = str(x) end
    res.context = cs
  else
    res.context = nil
  end
  if res.status ~= nil then res.status = str(res.status) end
  if res.error ~= nil then res.error = str(res.error) end
  if res.state ~= nil and type(res.state) ~= "table" then res.state = { value = res.state } end
  if type(res.output) ~= "string" and type(res.output) ~= "table" and res.output ~= nil then res.output = str(res.output) end
  return res
end

local function assertions_for(cfg, case)
  local l = {}
  for _, a in ipairs(cfg.assert or {}) do l[#l + 1] = a end
  for _, a in ipairs(case.assert or {}) do l[#l + 1] = a end
  return l
end

-- The weighted mean of the scores; a case passes at its threshold when
-- it has one, else when every weighted assertion passes.
local function score_case(checks, threshold)
  local wsum, ssum, all = 0, 0, true
  for _, c in ipairs(checks) do
    if c.weight > 0 then
      wsum = wsum + c.weight
      ssum = ssum + c.weight * c.score
      if not c.pass then all = false end
    end
  end
  local score = wsum > 0 and ssum / wsum or (all and 1 or 0)
  local pass
  if threshold then pass = score >= threshold else pass = all end
  return score, pass
end

local function score_result(cfg, res, case, env)
  local ctx = { judge = cfg.judge, prices = env.prices, judge_usage = { input = 0, output = 0, calls = 0, cost = 0 } }
  local checks = {}
  if res.status == "error" then
    res.assertions, res.score, res.pass = {}, 0, false
  else
    for _, a in ipairs(assertions_for(cfg, case)) do checks[#checks + 1] = E.check(a, res, case, ctx) end
    res.assertions = checks
    res.score, res.pass = score_case(checks, case.threshold or cfg.threshold)
  end
  res.judge = ctx.judge_usage
end

---------------------------------------------------------------------------
-- loading and running
---------------------------------------------------------------------------

--- luact.eval.load(path) -> config (checked; raises {config = message})
function E.load(path)
  local chunk, err = loadfile(path, "t")
  if not chunk then cfg_error(tostring(err)) end
  local ok, cfg = pcall(chunk)
  if not ok then cfg_error(path .. ": " .. str(cfg)) end
  if type(cfg) ~= "table" then cfg_error(path .. ": must return a table") end
  local bad = check_opts(cfg, "luact.eval.load")
  if bad then cfg_error(path .. ": " .. bad) end
  cfg.dir = path:match("^(.*)/[^/]*$") or "."
  cfg.path = path
  local targets = cfg.targets or cfg.prompts
  if cfg.scenarios then targets = targets or {} end
  if type(targets) ~= "table" then cfg_error(path .. ": 'targets' must be a list") end
  cfg.targets = {}
  for i, t in ipairs(targets) do
    for _, n in ipairs(normalize_target(t, i, cfg.providers)) do cfg.targets[#cfg.targets + 1] = n end
  end
  if cfg.scenarios then E.scenario_targets(cfg) end
  if #cfg.targets == 0 then cfg_error(path .. ": no targets") end
  local seen = {}
  for _, t in ipairs(cfg.targets) do
    if seen[t.name] then cfg_error(path .. ": two targets named " .. t.name) end
    seen[t.name] = true
  end
  cfg.cases = cfg.scenarios and E.scenario_cases(cfg) or dataset(cfg.dataset, cfg.dir)
  if #cfg.cases == 0 then cfg_error(path .. ": the dataset has no cases") end
  local ids = {}
  for i, c in ipairs(cfg.cases) do
    c.id = c.id and tostring(c.id) or tostring(i)
    -- results, stored runs and compare are keyed by case id
    if ids[c.id] then cfg_error(path .. ": two cases with id '" .. c.id .. "' (cases " .. ids[c.id] .. " and " .. i .. ")") end
    ids[c.id] = i
  end
  cfg["repeat"] = cfg["repeat"] or 1
  if math.type(cfg["repeat"]) ~= "integer" or cfg["repeat"] < 1 then cfg_error("'repeat' must be an integer >= 1") end
  cfg.concurrency = cfg.concurrency or 8
  if math.type(cfg.concurrency) ~= "integer" or cfg.concurrency < 1 then cfg_error("'concurrency' must be an integer >= 1") end
  if cfg.assert ~= nil and not is_list(cfg.assert, function(x) return type(x) == "table" end) then
    cfg_error(path .. ": 'assert' must be a list of assertions")
  end
  for i, a in ipairs(cfg.assert or {}) do
    if type(a) ~= "table" or type(a.type) ~= "string" then cfg_error("assert[" .. i .. "] must be {type=...}") end
  end
  -- Every assertion a case will run, checked against that case now.
  for _, c in ipairs(cfg.cases) do
    for i, a in ipairs(cfg.assert or {}) do E.validate_assert(a, c, "assert[" .. i .. "] (case " .. c.id .. ")") end
    for i, a in ipairs(c.assert or {}) do E.validate_assert(a, c, "case " .. c.id .. " assert[" .. i .. "]") end
  end
  if cfg.threshold ~= nil and not (type(cfg.threshold) == "number" and cfg.threshold >= 0 and cfg.threshold <= 1) then
    cfg_error(path .. ": 'threshold' must be a score from 0 to 1")
  end
  if cfg.judge ~= nil and type(cfg.judge) ~= "table" then cfg_error(path .. ": 'judge' must be a table of LLM options") end
  if cfg.prices ~= nil then
    if type(cfg.prices) ~= "table" then cfg_error(path .. ": 'prices' must be {[model] = {input =, output =}}") end
    for m, p in pairs(cfg.prices) do
      local function price_ok(x) return x == nil or (type(x) == "number" and x >= 0 and x < math.huge) end
      if type(p) ~= "table" or not price_ok(p.input) or not price_ok(p.output) then
        cfg_error(path .. ": prices[" .. tostring(m) .. "] must be {input = USD per 1M, output = USD per 1M}")
      end
    end
  end
  if cfg.labels ~= nil then
    if type(cfg.labels) ~= "table" then cfg_error(path .. ": 'labels' must be {label = version hash (prefix)}") end
    for l, hsh in pairs(cfg.labels) do
      if type(l) ~= "string" or type(hsh) ~= "string" or not hsh:match("^%x%x%x%x+$") then
        cfg_error(path .. ": labels." .. tostring(l) .. " must be a version hash or a prefix of 4 hex digits or more")
      end
    end
  end
  -- The judge's version: its options (the credentials left out) and this
  -- luact's (whose judge prompts they are). A changed judge shows in
  -- compare like a changed prompt.
  local jo = {}
  for k, v in pairs(cfg.judge or {}) do
    if k ~= "api_key" and k ~= "headers" then jo[k] = v end
  end
  cfg.judge_hash = E.sha256(assert(json.encode({ judge = canon(jo), luact = luact.version })))
  if cfg.pairwise ~= nil then
    local p = cfg.pairwise
    if type(p) ~= "table" or type(p.a) ~= "string" or type(p.b) ~= "string" then
      cfg_error(path .. ": 'pairwise' must be {a = target name, b = target name}")
    end
    for _, n in ipairs({ p.a, p.b }) do
      if not seen[n] then cfg_error(path .. ": pairwise: no target named " .. n) end
    end
    if p.a == p.b then cfg_error(path .. ": pairwise: a and b are the same target") end
    if not (cfg.judge or p.model) then cfg_error(path .. ": pairwise needs a judge model (judge = {model = ...})") end
  end
  return cfg
end

-- One target x case x repetition: run (or take the stored result), score.
local function run_job(cfg, opts, env, stored, j)
  local res
  local old = stored[j.t.name .. "\0" .. j.c.id .. "\0" .. j.rep]
  if opts.stored then
    if not old then return { target = j.t.name, case = j.c.id, ["repeat"] = j.rep, status = "error",
                             error = "not in the stored run", pass = false, score = 0, assertions = {},
                             judge = { input = 0, output = 0, calls = 0, cost = 0 } } end
    res = {}
    for k, v in pairs(old) do if k ~= "assertions" and k ~= "judge" then res[k] = v end end
  else
    res = run_target(j.t, j.c, env)
  end
  normalize_result(res)
  score_result(cfg, res, j.c, env)
  res.target, res.case, res["repeat"] = j.t.name, j.c.id, j.rep
  res.version = j.t.hash
  -- the judge's version, when a judge graded this result
  for _, a in ipairs(res.assertions or {}) do
    if a.model_graded then res.judge_version = cfg.judge_hash break end
  end
  res.description = j.c.description
  res.tags = j.c.tags
  if opts.on_result then opts.on_result(res) end
  return res
end

--- luact.eval.run(cfg, opts) -> report table. opts: repeat, concurrency,
-- replay (a journal answers every effect), stored (rescore: the results
-- of an earlier run whose outputs are scored again), on_result.
function E.run(cfg, opts)
  opts = opts or {}
  local bad = check_opts(opts, "luact.eval.run")
  if bad then error(bad, 2) end
  local reps = opts["repeat"] or cfg["repeat"] or 1
  local env = { prices = cfg.prices, replay = opts.replay, dir = cfg.dir }
  local jobs = {}
  local stored = {}
  for _, r in ipairs(opts.stored or {}) do
    -- a stored run is a file: entries without a name are not results
    if type(r) == "table" and type(r.target) == "string" and type(r.case) == "string" and math.type(r["repeat"]) == "integer" then
      stored[r.target .. "\0" .. r.case .. "\0" .. r["repeat"]] = r
    end
  end
  for _, t in ipairs(cfg.targets) do
    for _, c in ipairs(cfg.cases) do
      for rep = 1, reps do jobs[#jobs + 1] = { t = t, c = c, rep = rep } end
    end
  end
  if cfg.setup and not opts.stored then cfg.setup(env) end
  local t0 = luact.now()
  local cfg_err
  local results = luact.map(jobs, function(j)
    local ok, r = pcall(run_job, cfg, opts, env, stored, j)
    if ok then return r end
    -- A configuration error inside a task keeps its message (luact.map
    -- would turn the table into "table: 0x..."); others fail the run.
    if type(r) == "table" and r.config then cfg_err = cfg_err or r.config return false end
    error(r, 0)
  end, { concurrency = opts.concurrency or cfg.concurrency })
  if cfg_err then cfg_error(cfg_err) end
  local pair
  if cfg.pairwise then pair = E.run_pairwise(cfg, results) end
  -- (a replayed clock is whatever the journal says: never below 0)
  local wall = luact.now() - t0
  return E.summarize(cfg, results, { pairwise = pair, wall_s = (wall == wall and wall > 0) and wall or 0, repeat_n = reps })
end


-- Pairwise: for every case, the first repetition's outputs of targets a
-- and b, judged in both orders.
function E.run_pairwise(cfg, results)
  local p = cfg.pairwise
  if type(p) ~= "table" or type(p.a) ~= "string" or type(p.b) ~= "string" then
    cfg_error("'pairwise' must be {a = target name, b = target name}")
  end
  local by = {}
  for _, r in ipairs(results) do if r["repeat"] == 1 then by[r.target .. "\0" .. r.case] = r end end
  local ctx = { judge = cfg.judge, prices = cfg.prices, judge_usage = { input = 0, output = 0, calls = 0, cost = 0 } }
  local rows = luact.map(cfg.cases, function(c)
    local ra, rb = by[p.a .. "\0" .. c.id], by[p.b .. "\0" .. c.id]
    if not ra or not rb then cfg_error("pairwise: no target " .. (ra and p.b or p.a)) end
    local w, d = E.pairwise(c.input or str(c.vars), ra.output, rb.output, { type = "pairwise", model = p.model }, ctx)
    return { case = c.id, winner = w or "error", detail = type(d) == "table" and d or { error = d } }
  end, { concurrency = cfg.concurrency })
  local wa, wb, ties = 0, 0, 0
  for _, r in ipairs(rows) do
    if r.winner == "a" then wa = wa + 1 elseif r.winner == "b" then wb = wb + 1 elseif r.winner == "tie" then ties = ties + 1 end
  end
  local n = wa + wb + ties
  return { a = p.a, b = p.b, cases = rows, wins_a = wa, wins_b = wb, ties = ties,
           win_rate_a = n > 0 and (wa + ties / 2) / n or nil, judge = ctx.judge_usage }
end
