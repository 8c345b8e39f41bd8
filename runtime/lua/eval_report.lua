-- eval_report.lua: what luact eval shows and writes: the summary of a run
-- (per target: pass rate with its Wilson interval, mean score and 95%
-- interval per metric, p50/p95 latency, tokens, cost, judge cost apart;
-- per case across repetitions: pass rate, flips, pass^N), the terminal
-- table, JUnit XML, one self-contained HTML file with inline SVG charts
-- (no script or style from the network), and the case-by-case comparison
-- of two runs. Every text from a model or a case is escaped for its
-- format (XML, HTML) or flattened to one line (terminal).
local luact = ...

luact.eval = luact.eval or {}
local E = luact.eval
local json = luact.json

local function str(v)
  if v == nil then return "" end
  if type(v) == "string" then return v end
  if type(v) == "table" then return json.encode(v) or tostring(v) end
  return tostring(v)
end

-- Model output may be any bytes: a report keeps valid UTF-8 and puts
-- U+FFFD where a byte is not (JSON text must be UTF-8), and for NUL
-- (luact.json refuses it: C consumers would cut the string there).
local function valid_utf8(s)
  s = s:gsub("%z", "\u{FFFD}")
  if utf8.len(s) then return s end
  local out, i = {}, 1
  while i <= #s do
    local ok, bad = utf8.len(s, i)
    if ok then out[#out + 1] = s:sub(i) break end
    out[#out + 1] = s:sub(i, bad - 1)
    out[#out + 1] = "\u{FFFD}"
    i = bad + 1
  end
  return table.concat(out)
end

local function jsonable(v, depth)
  depth = depth or 0
  local t = type(v)
  if t == "string" then return valid_utf8(v) end
  if t == "boolean" or v == json.null then return v end
  if t == "number" then return (v ~= v or v == math.huge or v == -math.huge) and nil or v end
  if t == "table" and depth < 20 then
    local out = {}
    for k, x in pairs(v) do
      if type(k) == "string" or math.type(k) == "integer" then out[k] = jsonable(x, depth + 1) end
    end
    return out
  end
  return nil
end

local RESULT_FIELDS = { "target", "case", "repeat", "version", "judge_version", "status", "error", "output", "score", "pass",
  "latency_ms", "cost", "usage", "steps", "trajectory", "retrieved", "context", "state", "assertions", "judge",
  "description", "tags" }

local function clean_result(r)
  local o = {}
  for _, k in ipairs(RESULT_FIELDS) do o[k] = jsonable(r[k]) end
  if type(o.output) == "table" then o.output = json.encode(o.output) end
  o.usage = o.usage or { input = 0, output = 0 }
  o.usage = { input = o.usage.input or 0, output = o.usage.output or 0 }
  if o.trajectory then o.trajectory = json.array(o.trajectory) end
  if o.retrieved then o.retrieved = json.array(o.retrieved) end
  o.assertions = json.array(o.assertions or {})
  o.cost = o.cost or 0
  return o
end

--- summarize(cfg, results, extra) -> the report table
function E.summarize(cfg, results, extra)
  local M = E.metrics
  extra = extra or {}
  local rep = {
    format = "luact-eval/1",
    luact = luact.version,
    eval_file = cfg.path,
    description = cfg.description,
    ["repeat"] = extra.repeat_n or cfg["repeat"],
    wall_s = extra.wall_s,
    targets = json.array({}),
    cases = json.array({}),
    results = json.array({}),
    summary = json.array({}),
    flakiness = json.array({}),
    pairwise = extra.pairwise,
    labels = cfg.labels,
    judge_version = cfg.judge_hash,
  }
  local label_of = {}
  for l, h in pairs(cfg.labels or {}) do label_of[h] = label_of[h] or {} table.insert(label_of[h], l) end
  for _, t in ipairs(cfg.targets) do
    local labels = {}
    for h, ls in pairs(label_of) do if t.hash:sub(1, #h) == h then for _, l in ipairs(ls) do labels[#labels + 1] = l end end end
    if t.label then labels[#labels + 1] = t.label end
    table.sort(labels)
    rep.targets[#rep.targets + 1] = { name = t.name, version = t.hash, model = t.model, labels = json.array(labels) }
  end
  for _, c in ipairs(cfg.cases) do
    rep.cases[#rep.cases + 1] = jsonable({ id = c.id, description = c.description,
      tags = c.tags and json.array(c.tags) or nil, input = type(c.input) == "string" and c.input or nil })
  end
  for _, r in ipairs(results) do rep.results[#rep.results + 1] = clean_result(r) end
  local tot = { runs = 0, passed = 0, errors = 0, cost = 0, judge_cost = 0, tokens = 0 }
  for _, t in ipairs(cfg.targets) do
    local n, pass, scores, lat, cost, jcost, tin, tout, jt, mets = 0, 0, {}, {}, 0, 0, 0, 0, 0, {}
    local order = {}
    for _, r in ipairs(rep.results) do
      if r.target == t.name then
        n = n + 1
        if r.pass then pass = pass + 1 end
        if r.status == "error" then tot.errors = tot.errors + 1 end
        scores[#scores + 1] = r.score or 0
        if r.latency_ms then lat[#lat + 1] = r.latency_ms end
        cost = cost + (r.cost or 0)
        tin, tout = tin + r.usage.input, tout + r.usage.output
        jcost = jcost + (r.judge and r.judge.cost or 0)
        jt = jt + (r.judge and (r.judge.input + r.judge.output) or 0)
        for _, a in ipairs(r.assertions) do
          local m = mets[a.type]
          if not m then m = { scores = {}, pass = 0 } mets[a.type] = m order[#order + 1] = a.type end
          m.scores[#m.scores + 1] = a.score
          if a.pass then m.pass = m.pass + 1 end
        end
      end
    end
    local lo, hi = M.wilson(pass, n)
    local sm, slo, shi = M.mean_ci(scores)
    if sm then slo, shi = math.max(0, slo), math.min(1, shi) end
    local metrics = json.array({})
    for _, k in ipairs(order) do
      local m = mets[k]
      local mm, ml, mh = M.mean_ci(m.scores)
      ml, mh = math.max(0, ml), math.min(1, mh) -- scores live in [0, 1]
      metrics[#metrics + 1] = { type = k, n = #m.scores, mean = mm, low = ml, high = mh, pass_rate = m.pass / #m.scores }
    end
    rep.summary[#rep.summary + 1] = {
      target = t.name, version = t.hash, runs = n, passed = pass, pass_rate = n > 0 and pass / n or 0,
      pass_low = lo, pass_high = hi, score_mean = sm or 0, score_low = slo or 0, score_high = shi or 0,
      metrics = metrics, latency_p50 = M.percentile(lat, 50), latency_p95 = M.percentile(lat, 95),
      tokens_input = tin, tokens_output = tout, cost = cost, judge_cost = jcost, judge_tokens = jt,
    }
    tot.runs, tot.passed = tot.runs + n, tot.passed + pass
    tot.cost, tot.judge_cost, tot.tokens = tot.cost + cost, tot.judge_cost + jcost, tot.tokens + tin + tout
  end
  if extra.pairwise and extra.pairwise.judge then tot.judge_cost = tot.judge_cost + extra.pairwise.judge.cost end
  -- Flakiness: a case run N times.
  local N = rep["repeat"] or 1
  if N > 1 then
    local seq = {}
    local keys = {}
    for _, r in ipairs(rep.results) do
      local k = r.target .. "\0" .. r.case
      if not seq[k] then seq[k] = {} keys[#keys + 1] = { k, r.target, r.case } end
      seq[k][r["repeat"]] = r.pass
    end
    for _, kk in ipairs(keys) do
      local s = seq[kk[1]]
      local c, flips = 0, 0
      for i = 1, N do
        if s[i] then c = c + 1 end
        if i > 1 and s[i] ~= s[i - 1] then flips = flips + 1 end
      end
      rep.flakiness[#rep.flakiness + 1] = { target = kk[2], case = kk[3], runs = N, passed = c, pass_rate = c / N,
        flips = flips, pass_hat_n = M.pass_hat_k(c, N, N), flaky = c > 0 and c < N }
    end
  end
  tot.failed = tot.runs - tot.passed
  tot.pass_rate = tot.runs > 0 and tot.passed / tot.runs or 0
  rep.totals = tot
  return rep
end

---------------------------------------------------------------------------
-- terminal
---------------------------------------------------------------------------

local function flat(s, n)
  s = str(s):gsub("[%c]", " ")
  if #s > n then
    local cut = n - 1
    while cut > 0 and (s:byte(cut + 1) or 0) & 0xC0 == 0x80 do cut = cut - 1 end
    s = s:sub(1, cut) .. "~"
  end
  return s
end

-- The first n bytes of s, cut before a UTF-8 sequence rather than inside
-- it (xml() turns text that is not UTF-8 into question marks).
local function utf8_prefix(s, n)
  if #s <= n then return s end
  while n > 0 and (s:byte(n + 1) or 0) & 0xC0 == 0x80 do n = n - 1 end
  return s:sub(1, n)
end

local function pad(s, n)
  local len = utf8.len(s) or #s
  return s .. string.rep(" ", math.max(0, n - len))
end

local function fmt_ms(v) return v and string.format("%.0fms", v) or "-" end
local function fmt_usd(v) return string.format("$%.4f", v or 0) end

--- terminal(report) -> text: one row per case, one cell per target
-- (PASS/FAIL score latency cost), then per target the footer.
function E.terminal(rep)
  local out = {}
  local by = {}
  for _, r in ipairs(rep.results) do
    local k = r.target .. "\0" .. r.case
    by[k] = by[k] or {}
    table.insert(by[k], r)
  end
  local head = { pad("case", 18) }
  for _, t in ipairs(rep.targets) do head[#head + 1] = pad(flat(t.name, 30), 30) end
  out[#out + 1] = table.concat(head, " | ")
  out[#out + 1] = string.rep("-", #out[1])
  for _, c in ipairs(rep.cases) do
    local row = { pad(flat(c.id, 18), 18) }
    for _, t in ipairs(rep.targets) do
      local rs = by[t.name .. "\0" .. c.id] or {}
      local cell
      if #rs == 0 then cell = "-"
      else
        local p, s, l, co = 0, 0, 0, 0
        for _, r in ipairs(rs) do
          if r.pass then p = p + 1 end
          s, l, co = s + (r.score or 0), l + (r.latency_ms or 0), co + (r.cost or 0)
        end
        local verdict = #rs == 1 and (rs[1].status == "error" and "ERR " or rs[1].pass and "PASS" or "FAIL")
          or string.format("%d/%d", p, #rs)
        cell = string.format("%s %.2f %s %s", verdict, s / #rs, fmt_ms(l / #rs), fmt_usd(co / #rs))
      end
      row[#row + 1] = pad(cell, 30)
    end
    out[#out + 1] = table.concat(row, " | ")
  end
  out[#out + 1] = ""
  for _, s in ipairs(rep.summary) do
    out[#out + 1] = string.format("%s [%s]: %d/%d passed (%.1f%%, 95%% CI %.1f-%.1f%%), score %.3f (%.3f-%.3f)",
      flat(s.target, 40), s.version:sub(1, 12), s.passed, s.runs, s.pass_rate * 100, s.pass_low * 100, s.pass_high * 100,
      s.score_mean, s.score_low, s.score_high)
    for _, m in ipairs(s.metrics) do
      out[#out + 1] = string.format("  %-20s mean %.3f (95%% CI %.3f-%.3f), %.0f%% pass, n=%d", m.type, m.mean, m.low, m.high,
        m.pass_rate * 100, m.n)
    end
    out[#out + 1] = string.format("  latency p50 %s p95 %s, tokens %d in %d out, cost %s, judge %s (%d tokens)",
      fmt_ms(s.latency_p50), fmt_ms(s.latency_p95), s.tokens_input, s.tokens_output, fmt_usd(s.cost),
      fmt_usd(s.judge_cost), s.judge_tokens)
  end
  for _, f in ipairs(rep.flakiness or {}) do
    if f.flaky then
      out[#out + 1] = string.format("flaky: %s / %s passed %d of %d (flips %d, pass^%d %.3f)", flat(f.target, 30),
        flat(f.case, 30), f.passed, f.runs, f.flips, f.runs, f.pass_hat_n)
    end
  end
  if rep.pairwise then
    local p = rep.pairwise
    out[#out + 1] = string.format("pairwise %s vs %s: %d wins, %d losses, %d ties, win rate %.3f", p.a, p.b,
      p.wins_a, p.wins_b, p.ties, p.win_rate_a or 0)
  end
  if rep.review then
    out[#out + 1] = string.format("human review: %d verdicts, judge-human agreement %.3f, Cohen's kappa %.3f",
      rep.review.n, rep.review.agreement or 0, rep.review.kappa or 0)
  end
  local t = rep.totals
  out[#out + 1] = string.format("total: %d/%d passed (%.1f%%), %d errors, cost %s, judge cost %s",
    t.passed, t.runs, t.pass_rate * 100, t.errors, fmt_usd(t.cost), fmt_usd(t.judge_cost))
  return table.concat(out, "\n") .. "\n"
end

---------------------------------------------------------------------------
-- JUnit XML
---------------------------------------------------------------------------

local function xml(s)
  s = str(s)
  -- XML 1.0 has no place for most control characters: drop them.
  s = s:gsub("[%z\1-\8\11\12\14-\31]", "")
  if not utf8.len(s) then s = s:gsub("[\128-\255]", "?") end
  return (s:gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"):gsub('"', "&quot;"):gsub("'", "&apos;"))
end
E.xml_escape = xml

function E.junit(rep)
  local out = { '<?xml version="1.0" encoding="UTF-8"?>' }
  local t = rep.totals
  out[#out + 1] = string.format('<testsuites name="luact eval" tests="%d" failures="%d" errors="%d">', t.runs,
    t.failed - t.errors, t.errors)
  for _, s in ipairs(rep.summary) do
    local f, e = 0, 0
    for _, r in ipairs(rep.results) do
      if r.target == s.target and not r.pass then if r.status == "error" then e = e + 1 else f = f + 1 end end
    end
    out[#out + 1] = string.format('  <testsuite name="%s" tests="%d" failures="%d" errors="%d">', xml(s.target), s.runs, f, e)
    for _, r in ipairs(rep.results) do
      if r.target == s.target then
        local name = r.case .. (rep["repeat"] and rep["repeat"] > 1 and ("#" .. r["repeat"]) or "")
        out[#out + 1] = string.format('    <testcase classname="%s" name="%s" time="%.3f">', xml(s.target), xml(name),
          (r.latency_ms or 0) / 1000)
        if r.status == "error" then
          out[#out + 1] = string.format('      <error message="%s"/>', xml(flat(r.error, 500)))
        elseif not r.pass then
          local why = {}
          for _, a in ipairs(r.assertions) do
            if not a.pass then why[#why + 1] = a.type .. ": " .. a.reason end
          end
          out[#out + 1] = string.format('      <failure message="%s">%s</failure>', xml(flat(table.concat(why, "; "), 500)),
            xml(str(r.output)))
        end
        out[#out + 1] = "    </testcase>"
      end
    end
    out[#out + 1] = "  </testsuite>"
  end
  out[#out + 1] = "</testsuites>"
  return table.concat(out, "\n") .. "\n"
end

---------------------------------------------------------------------------
-- HTML with inline SVG
---------------------------------------------------------------------------

local h = xml

local function bars(id, title, items, maxv, fmt)
  -- items: {{label, value}}; a horizontal bar chart
  local w, rowh = 560, 22
  local height = 30 + #items * rowh
  local o = { string.format('<figure><figcaption>%s</figcaption><svg class="chart" id="%s" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img">',
    h(title), h(id), w, height) }
  maxv = (maxv and maxv > 0) and maxv or 1
  for i, it in ipairs(items) do
    local y = 10 + (i - 1) * rowh
    local bw = math.max(0, math.floor(320 * (it[2] or 0) / maxv))
    o[#o + 1] = string.format('<text x="0" y="%d" font-size="12">%s</text><rect x="180" y="%d" width="%d" height="16" fill="#4a7bd0"><title>%s</title></rect><text x="%d" y="%d" font-size="12">%s</text>',
      y + 12, h(flat(it[1], 26)), y, bw, h(it[1]), 186 + bw, y + 12, h(fmt(it[2] or 0)))
  end
  o[#o + 1] = "</svg></figure>"
  return table.concat(o)
end

local function histogram(id, title, xs, bins, lo, hi, fmt)
  if #xs == 0 then return "" end
  if not lo then lo, hi = math.huge, -math.huge for _, x in ipairs(xs) do lo = math.min(lo, x) hi = math.max(hi, x) end end
  if hi <= lo then hi = lo + 1 end
  local c = {}
  for i = 1, bins do c[i] = 0 end
  for _, x in ipairs(xs) do
    local b = math.floor((x - lo) / (hi - lo) * bins) + 1
    b = math.max(1, math.min(bins, b))
    c[b] = c[b] + 1
  end
  local maxc = 1
  for i = 1, bins do maxc = math.max(maxc, c[i]) end
  local w, hh = 560, 160
  local bw = (w - 40) / bins
  local o = { string.format('<figure><figcaption>%s</figcaption><svg class="chart" id="%s" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img">',
    h(title), h(id), w, hh + 30) }
  for i = 1, bins do
    local bh = math.floor((hh - 10) * c[i] / maxc)
    o[#o + 1] = string.format('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#3c9d6e"><title>%s-%s: %d</title></rect>',
      20 + (i - 1) * bw, hh - bh, bw - 2, bh, fmt(lo + (i - 1) * (hi - lo) / bins), fmt(lo + i * (hi - lo) / bins), c[i])
  end
  o[#o + 1] = string.format('<text x="20" y="%d" font-size="11">%s</text><text x="%d" y="%d" font-size="11" text-anchor="end">%s</text></svg></figure>',
    hh + 20, fmt(lo), w - 20, hh + 20, fmt(hi))
  return table.concat(o)
end

local CSS = [[body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}td.pass{background:#e3f5e8}td.fail{background:#fbe4e4}
td.err{background:#f5e9c9}figure{display:inline-block;margin:1em}pre{white-space:pre-wrap;max-width:40em;margin:0}
.small{color:#666;font-size:12px}]]

-- The one inline script: counts what rendered, so a headless browser's
-- DOM dump proves the page was parsed and drawn (tests read #rendered).
local SCRIPT = [[<script>document.getElementById("rendered").textContent="rendered: "+document.querySelectorAll("svg.chart").length+" charts, "+document.querySelectorAll("tr.case").length+" rows";</script>]]

--- html(report [, compare]) -> one self-contained page
function E.html(rep, cmp)
  local o = { '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>luact eval</title>',
    '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; script-src \'unsafe-inline\'; img-src data:">',
    "<style>", CSS, "</style></head><body>" }
  o[#o + 1] = string.format("<h1>luact eval: %s</h1>", h(rep.description or rep.eval_file or ""))
  local t = rep.totals
  o[#o + 1] = string.format('<p id="totals">%d of %d passed (%.1f%%), %d errors, cost $%.4f, judge cost $%.4f</p>',
    t.passed, t.runs, t.pass_rate * 100, t.errors, t.cost, t.judge_cost)
  o[#o + 1] = '<p id="rendered" class="small">not rendered</p>'
  -- charts
  local pr, lat, costs, scores = {}, {}, {}, {}
  for _, s in ipairs(rep.summary) do pr[#pr + 1] = { s.target, s.pass_rate } end
  for _, r in ipairs(rep.results) do
    if r.latency_ms then lat[#lat + 1] = r.latency_ms end
    costs[#costs + 1] = { r.target .. " / " .. r.case, r.cost or 0 }
    scores[#scores + 1] = r.score or 0
  end
  o[#o + 1] = bars("pass-rates", "Pass rate per target", pr, 1, function(v) return string.format("%.0f%%", v * 100) end)
  o[#o + 1] = histogram("scores", "Score histogram", scores, 10, 0, 1, function(v) return string.format("%.1f", v) end)
  o[#o + 1] = histogram("latency", "Latency distribution (ms)", lat, 12, nil, nil, function(v) return string.format("%.0f", v) end)
  local maxc = 0
  for _, c in ipairs(costs) do maxc = math.max(maxc, c[2]) end
  o[#o + 1] = bars("costs", "Cost per case (USD)", costs, maxc, function(v) return string.format("$%.5f", v) end)
  if cmp then
    local items = {}
    for _, row in ipairs(cmp.rows) do items[#items + 1] = { row.case .. " / " .. row.target, (row.score_b or 0) - (row.score_a or 0) + 1 } end
    o[#o + 1] = bars("compare", "Compare: score B - score A (+1)", items, 2, function(v) return string.format("%+.2f", v - 1) end)
  end
  -- summary table
  o[#o + 1] = "<h2>Targets</h2><table><tr><th>target</th><th>version</th><th>pass rate (95% CI)</th><th>score (95% CI)</th><th>p50/p95 ms</th><th>tokens</th><th>cost</th><th>judge cost</th></tr>"
  for _, s in ipairs(rep.summary) do
    o[#o + 1] = string.format("<tr><td>%s</td><td><code>%s</code></td><td>%.1f%% (%.1f-%.1f)</td><td>%.3f (%.3f-%.3f)</td><td>%s / %s</td><td>%d / %d</td><td>$%.4f</td><td>$%.4f</td></tr>",
      h(s.target), h(s.version:sub(1, 12)), s.pass_rate * 100, s.pass_low * 100, s.pass_high * 100, s.score_mean, s.score_low,
      s.score_high, fmt_ms(s.latency_p50), fmt_ms(s.latency_p95), s.tokens_input, s.tokens_output, s.cost, s.judge_cost)
  end
  o[#o + 1] = "</table>"
  -- cases
  o[#o + 1] = "<h2>Cases</h2><table><tr><th>case</th><th>target</th><th>#</th><th>verdict</th><th>score</th><th>latency</th><th>cost</th><th>output</th><th>assertions</th></tr>"
  for _, r in ipairs(rep.results) do
    local cls = r.status == "error" and "err" or r.pass and "pass" or "fail"
    local as = {}
    for _, a in ipairs(r.assertions) do
      as[#as + 1] = string.format("%s %s %.2f: %s", a.pass and "&#10003;" or "&#10007;", h(a.type), a.score, h(flat(a.reason, 200)))
    end
    o[#o + 1] = string.format('<tr class="case"><td>%s</td><td>%s</td><td>%d</td><td class="%s">%s</td><td>%.3f</td><td>%s</td><td>$%.5f</td><td><pre>%s</pre></td><td>%s</td></tr>',
      h(r.case), h(r.target), r["repeat"] or 1, cls, cls == "err" and "ERROR" or r.pass and "PASS" or "FAIL", r.score or 0,
      fmt_ms(r.latency_ms), r.cost or 0, h(r.status == "error" and r.error or utf8_prefix(str(r.output), 2000)),
      table.concat(as, "<br>"))
  end
  o[#o + 1] = "</table>"
  if rep.review then
    o[#o + 1] = string.format('<h2>Human review</h2><p id="review">%d verdicts; judge-human agreement %.3f; Cohen\'s kappa %.3f</p>',
      rep.review.n, rep.review.agreement or 0, rep.review.kappa or 0)
  end
  if rep.pairwise then
    local p = rep.pairwise
    o[#o + 1] = string.format('<h2>Pairwise</h2><p id="pairwise">%s vs %s: %d wins, %d losses, %d ties; win rate %.3f</p>',
      h(p.a), h(p.b), p.wins_a, p.wins_b, p.ties, p.win_rate_a or 0)
  end
  if cmp then o[#o + 1] = "<h2>Compare</h2><pre id=\"compare\">" .. h(cmp.text) .. "</pre>" end
  o[#o + 1] = SCRIPT
  o[#o + 1] = "</body></html>\n"
  return table.concat(o)
end

---------------------------------------------------------------------------
-- compare two runs
---------------------------------------------------------------------------

--- compare(report_a, report_b) -> {rows, text, changed}: case by case,
-- per target name: verdict, score, latency, cost, output and version.
function E.compare(a, b)
  local ia = {}
  for _, r in ipairs(a.results) do
    local k = r.target .. "\0" .. r.case
    if not ia[k] or r["repeat"] == 1 then ia[k] = r end
  end
  local rows, lines, changed, seen = {}, {}, 0, {}
  local function verdict(r) return not r and "-" or r.status == "error" and "ERR" or r.pass and "PASS" or "FAIL" end
  lines[1] = string.format("%-18s %-24s %-11s %-15s %-14s %s", "case", "target", "verdict", "score", "latency", "what changed")
  for _, rb in ipairs(b.results) do
    local k = rb.target .. "\0" .. rb.case
    if not seen[k] and (rb["repeat"] or 1) == 1 then
      seen[k] = true
      local ra = ia[k]
      local what = {}
      if not ra then what[#what + 1] = "new case"
      else
        if ra.version ~= rb.version then what[#what + 1] = "version " .. str(ra.version):sub(1, 8) .. "->" .. str(rb.version):sub(1, 8) end
        if ra.judge_version ~= rb.judge_version and ra.judge_version and rb.judge_version then
          what[#what + 1] = "judge " .. str(ra.judge_version):sub(1, 8) .. "->" .. str(rb.judge_version):sub(1, 8)
        end
        if str(ra.output) ~= str(rb.output) then what[#what + 1] = "output" end
        if (ra.pass and true or false) ~= (rb.pass and true or false) then what[#what + 1] = ra.pass and "REGRESSED" or "FIXED" end
      end
      if #what > 0 then changed = changed + 1 end
      rows[#rows + 1] = { case = rb.case, target = rb.target, verdict_a = verdict(ra), verdict_b = verdict(rb),
        score_a = ra and ra.score, score_b = rb.score, latency_a = ra and ra.latency_ms, latency_b = rb.latency_ms,
        cost_a = ra and ra.cost, cost_b = rb.cost, changes = json.array(what) }
      lines[#lines + 1] = string.format("%-18s %-24s %-11s %-15s %-14s %s", flat(rb.case, 18), flat(rb.target, 24),
        verdict(ra) .. "->" .. verdict(rb), string.format("%.2f->%.2f", ra and ra.score or 0, rb.score or 0),
        fmt_ms(ra and ra.latency_ms) .. "->" .. fmt_ms(rb.latency_ms), table.concat(what, ", "))
    end
  end
  for k, ra in pairs(ia) do
    if not seen[k] then
      changed = changed + 1
      rows[#rows + 1] = { case = ra.case, target = ra.target, verdict_a = verdict(ra), verdict_b = "-", score_a = ra.score,
        changes = json.array({ "removed" }) }
      lines[#lines + 1] = string.format("%-18s %-24s %-11s %-15s %-14s %s", flat(ra.case, 18), flat(ra.target, 24),
        verdict(ra) .. "->-", "", "", "removed")
    end
  end
  lines[#lines + 1] = string.format("%d of %d rows changed; pass rate %.1f%% -> %.1f%%", changed, #rows,
    a.totals.pass_rate * 100, b.totals.pass_rate * 100)
  return { rows = rows, text = table.concat(lines, "\n") .. "\n", changed = changed }
end
