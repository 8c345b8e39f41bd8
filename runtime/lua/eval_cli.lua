-- eval_cli.lua: the command line of `luact eval` (runtime/eval/eval_main.c
-- calls cli_plan outside any task, then cli_run as the root task). A run
-- directory holds journal.jsonl (every effect: the targets' model and tool
-- calls, the judge's calls, the clock), results.json (the JSON report),
-- junit.xml and report.html; --replay, --rescore, compare and review read
-- it back.
local luact = ...

luact.eval = luact.eval or {}
local E = luact.eval
local json = luact.json

local USAGE = [[
usage: luact eval [options] EVAL.lua
       luact eval --replay RUN [options] [EVAL.lua]
       luact eval --rescore RUN [options] [EVAL.lua]
       luact eval compare RUN_A RUN_B [--html FILE] [--json FILE]
       luact eval review RUN [--input FILE]

Runs every target of EVAL.lua on every case of its dataset, scores each
with the assertions, prints a table and writes RUN (a directory: the
effect journal, results.json, junit.xml, report.html). See docs/eval.md.

options:
  --out DIR          the run directory (default .luact-eval/<date>-<n>)
  --repeat N         run each case N times: pass rate, flips, pass^N
  --concurrency N    cases at once (default: the file's, else 8)
  --replay RUN       run again answering every model, tool and judge call
                     from RUN's journal: no network, recorded latency and
                     cost; EVAL.lua defaults to the one RUN names
  --rescore RUN      score RUN's stored outputs again with EVAL.lua's
                     assertions (only judges are called)
  --json FILE        also write the JSON report to FILE (- : stdout)
  --junit FILE       also write JUnit XML to FILE
  --html FILE        also write the HTML report to FILE
  --fail-under RATE  exit 100 when the pass rate is below RATE (0-1;
                     default 1: any failed case)
  --quiet            no table on stdout
  -h, --help         this help

exit codes: 0 all passed, 100 a case failed, 1 error, 2 bad configuration
or command line
]]

local function shq(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Reports and the terminal hold model and tool output, which may echo a
-- key: every byte eval prints or writes goes through E.scrub (secrets.h).
local function say(text) io.stdout:write(E.scrub(text)) end

local function write(path, text)
  text = E.scrub(text, (path == "-" or path:find("%.json$")) and "json" or nil)
  if path == "-" then io.stdout:write(text) return true end
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  f:write(text)
  f:close()
  local ok, e2 = os.rename(tmp, path)
  if not ok then return nil, e2 end
  return true
end

local function mkdir(path)
  local ok = os.execute("mkdir -p " .. shq(path))
  if not ok then error({ config = "cannot create " .. path }) end
end

-- A stored run is a file anyone could have written: what compare, review,
-- --replay and --rescore read from it is checked first, so a crafted or
-- truncated results.json is one clear error (exit 1), not a traceback.
local function report_problem(r)
  if type(r) ~= "table" then return "not an object" end
  if r.format ~= "luact-eval/1" then return "format is not luact-eval/1" end
  if type(r.eval_file) ~= "string" then return "no eval_file" end
  for _, k in ipairs({ "results", "targets", "cases", "summary" }) do
    if type(r[k]) ~= "table" then return "no " .. k .. " list" end
  end
  for i, x in ipairs(r.results) do
    if type(x) ~= "table" or type(x.target) ~= "string" or type(x.case) ~= "string" then
      return "results[" .. i .. "] has no target and case"
    end
    if x["repeat"] ~= nil and math.type(x["repeat"]) ~= "integer" then return "results[" .. i .. "].repeat is not an integer" end
    if x.score ~= nil and type(x.score) ~= "number" then return "results[" .. i .. "].score is not a number" end
    if type(x.assertions) ~= "table" then return "results[" .. i .. "] has no assertions list" end
    for j, a in ipairs(x.assertions) do
      if type(a) ~= "table" or type(a.type) ~= "string" or type(a.pass) ~= "boolean" or type(a.score) ~= "number" then
        return "results[" .. i .. "].assertions[" .. j .. "] is not an assertion"
      end
    end
  end
  if type(r.totals) ~= "table" or type(r.totals.pass_rate) ~= "number" then return "no totals" end
  return nil
end

local function load_report(run)
  local s = read(run .. "/results.json")
  if not s then return nil, "no results.json in " .. run end
  local r, err = json.decode(s)
  if r == nil then return nil, run .. "/results.json: " .. tostring(err) end
  local why = report_problem(r)
  if why then return nil, run .. "/results.json is not a luact eval report: " .. why end
  return r
end

-- RUN/review.json: {["target/case/repeat/assertion"] = true | false}; only
-- booleans are verdicts.
local function load_reviews(run)
  local s = read(run .. "/review.json")
  if not s then return {} end
  local r = json.decode(s)
  if type(r) ~= "table" then return nil, run .. "/review.json is not an object of verdicts" end
  local out = {}
  for k, v in pairs(r) do if type(k) == "string" and type(v) == "boolean" then out[k] = v end end
  return out
end
E.load_report = load_report

local function fail(msg, code)
  -- a message may quote a case id or a model's text: no escape sequences
  io.stderr:write("luact eval: ", (E.scrub(tostring(msg)):gsub("[%z\1-\8\11-\31\127]", "?")), "\n")
  return code or 2
end

local function new_run_dir()
  local base = os.date("!.luact-eval/%Y%m%d-%H%M%S")
  for i = 1, 1000 do
    local d = string.format("%s-%d", base, i)
    if not io.open(d .. "/results.json", "rb") and os.execute("mkdir -p .luact-eval && mkdir " .. shq(d) .. " 2>/dev/null") then
      return d
    end
  end
  error("cannot make a run directory under .luact-eval")
end

local function review_stats(rep, reviews)
  -- One judge verdict per reviewed item: the model-graded assertions' pass.
  local judge, human = {}, {}
  for _, r in ipairs(rep.results) do
    for i, a in ipairs(r.assertions) do
      local k = r.target .. "/" .. r.case .. "/" .. (r["repeat"] or 1) .. "/" .. i
      if a.model_graded and reviews[k] ~= nil then
        judge[#judge + 1] = a.pass
        human[#human + 1] = reviews[k]
      end
    end
  end
  if #judge == 0 then return nil end
  local kappa, agree = E.metrics.cohen_kappa(judge, human)
  return { n = #judge, agreement = agree, kappa = kappa }
end

local function write_reports(rep, dir, o, cmp)
  local pretty, jerr = json.encode(rep, { pretty = true })
  if not pretty then error("cannot write the JSON report: " .. tostring(jerr), 0) end
  assert(write(dir .. "/results.json", pretty .. "\n"))
  assert(write(dir .. "/junit.xml", E.junit(rep)))
  assert(write(dir .. "/report.html", E.html(rep, cmp)))
  if o.json then assert(write(o.json, pretty .. "\n")) end
  if o.junit then assert(write(o.junit, E.junit(rep))) end
  if o.html then assert(write(o.html, E.html(rep, cmp))) end
end

--- cli_plan(args) -> plan table | exit code (outside any task; no effects)
function E.cli_plan(args)
  local o = { args = args }
  local i = 1
  local sub = args[1]
  if sub == "compare" or sub == "review" then o.sub = sub i = 2 end
  local pos = {}
  while i <= #args do
    local a = args[i]
    local function val()
      i = i + 1
      if args[i] == nil then error({ usage = a .. " needs a value" }) end
      return args[i]
    end
    if a == "-h" or a == "--help" then io.stdout:write(USAGE) return 0
    elseif a == "--out" then o.out = val()
    elseif a == "--repeat" then o["repeat"] = math.tointeger(tonumber(val()))
      if not o["repeat"] or o["repeat"] < 1 then return fail("--repeat needs an integer >= 1") end
    elseif a == "--concurrency" then o.concurrency = math.tointeger(tonumber(val()))
      if not o.concurrency or o.concurrency < 1 then return fail("--concurrency needs an integer >= 1") end
    elseif a == "--replay" then o.replay = val()
    elseif a == "--rescore" then o.rescore = val()
    elseif a == "--json" then o.json = val()
    elseif a == "--junit" then o.junit = val()
    elseif a == "--html" then o.html = val()
    elseif a == "--input" then o.input = val()
    elseif a == "--fail-under" then o.fail_under = tonumber(val())
      if not o.fail_under or o.fail_under < 0 or o.fail_under > 1 then return fail("--fail-under needs a number from 0 to 1") end
    elseif a == "--quiet" or a == "-q" then o.quiet = true
    elseif a:sub(1, 1) == "-" and a ~= "-" then return fail("unknown option '" .. a .. "' (see luact eval --help)")
    else pos[#pos + 1] = a end
    i = i + 1
  end
  o.pos = pos
  if o.sub then
    if (o.sub == "compare" and #pos ~= 2) or (o.sub == "review" and #pos ~= 1) then
      io.stderr:write(USAGE)
      return 2
    end
    return o
  end
  if o.replay and o.rescore then return fail("give --replay or --rescore, not both") end
  local stored = o.replay or o.rescore
  if stored then
    local rep, err = load_report(stored)
    if not rep then return fail(err, 1) end
    o.file = pos[1] or rep.eval_file
    o.stored_report = nil
  else
    o.file = pos[1]
  end
  if #pos > 1 then return fail("one eval file, not " .. #pos) end
  if not o.file then io.stderr:write(USAGE) return 2 end
  if not read(o.file) then return fail("cannot read " .. o.file) end
  o.script = o.file
  if o.out then
    local ok = os.execute("mkdir -p " .. shq(o.out))
    if not ok then return fail("cannot create " .. o.out, 1) end
  else
    o.out = new_run_dir()
  end
  if o.replay then
    o.journal_mode, o.journal = "replay", o.replay .. "/journal.jsonl"
    if not read(o.journal) then return fail("no journal.jsonl in " .. o.replay, 1) end
  else
    o.journal_mode, o.journal = "record", o.out .. "/journal.jsonl"
  end
  return o
end

local function cmd_compare(o)
  local a, e1 = load_report(o.pos[1])
  if not a then return fail(e1, 1) end
  local b, e2 = load_report(o.pos[2])
  if not b then return fail(e2, 1) end
  local c = E.compare(a, b)
  say(c.text)
  if o.html then assert(write(o.html, E.html(b, c))) end
  if o.json then assert(write(o.json, json.encode({ a = o.pos[1], b = o.pos[2], rows = c.rows, changed = c.changed }, { pretty = true }) .. "\n")) end
  return 0
end

-- review RUN: each model-graded verdict is shown; the person answers y
-- (the output passes), n, or s (skip). Answers go to RUN/review.json and
-- the report gains judge-human agreement and Cohen's kappa.
local function cmd_review(o)
  local run = o.pos[1]
  local rep, err = load_report(run)
  if not rep then return fail(err, 1) end
  local reviews, rerr = load_reviews(run)
  if not reviews then return fail(rerr, 1) end
  local input = io.stdin
  if o.input then
    input = io.open(o.input, "rb")
    if not input then return fail("cannot open " .. o.input, 1) end
  end
  local asked = 0
  for _, r in ipairs(rep.results) do
    for i, a in ipairs(r.assertions) do
      local k = r.target .. "/" .. r.case .. "/" .. (r["repeat"] or 1) .. "/" .. i
      if a.model_graded and reviews[k] == nil then
        -- everything shown is flattened: a case id or an output may hold
        -- terminal escape sequences
        local function one_line(v) return (tostring(v or ""):gsub("%c", " ")) end
        say(string.format("\n== %s / %s (%s)\noutput: %s\njudge: %s %.2f: %s\npass? [y/n/s] ",
          one_line(r.target), one_line(r.case), one_line(a.type), one_line(r.output):sub(1, 2000),
          a.pass and "PASS" or "FAIL", a.score, one_line(a.reason)))
        io.stdout:flush()
        local line = input:read("l")
        if not line then break end
        line = line:lower():match("^%s*(%a)")
        if line == "y" then reviews[k] = true asked = asked + 1
        elseif line == "n" then reviews[k] = false asked = asked + 1 end
      end
    end
  end
  if input ~= io.stdin then input:close() end
  assert(write(run .. "/review.json", json.encode(reviews, { pretty = true }) .. "\n"))
  rep.review = review_stats(rep, reviews)
  write_reports(rep, run, {})
  say(string.format("\n%d new verdicts recorded in %s/review.json\n", asked, run))
  if rep.review then
    say(string.format("judge-human agreement %.3f over %d verdicts, Cohen's kappa %.3f\n",
      rep.review.agreement, rep.review.n, rep.review.kappa))
  end
  return 0
end

--- cli_run(plan) -> exit code (the root task)
function E.cli_run(o)
  if o.sub then
    local ok, rc = pcall(o.sub == "compare" and cmd_compare or cmd_review, o)
    if ok then return rc end
    return fail(type(rc) == "table" and (rc.config or json.encode(rc)) or tostring(rc), 1)
  end
  local ok, res = pcall(function()
    local cfg = E.load(o.file)
    local ropts = { ["repeat"] = o["repeat"], concurrency = o.concurrency, replay = o.replay ~= nil }
    if o.rescore then
      local old = assert(load_report(o.rescore))
      ropts.stored = old.results
      ropts["repeat"] = ropts["repeat"] or old["repeat"]
    end
    local rep = E.run(cfg, ropts)
    rep.run_dir = o.out
    rep.replay_of, rep.rescore_of = o.replay, o.rescore
    if o.replay or o.rescore then
      local reviews = load_reviews(o.replay or o.rescore)
      if reviews then rep.review = review_stats(rep, reviews) end
    end
    return rep
  end)
  if not ok then
    if type(res) == "table" and res.config then return fail(res.config, 2) end
    return fail(tostring(type(res) == "table" and (res.usage or json.encode(res)) or res), 1)
  end
  local rep = res
  write_reports(rep, o.out, o)
  if not o.quiet and o.json ~= "-" then say(E.terminal(rep)) end
  io.stderr:write("luact eval: run in ", o.out, "\n")
  local t = rep.totals
  local need = o.fail_under or 1
  if t.runs == 0 then return 0 end
  if t.pass_rate < need then return 100 end
  return 0
end
