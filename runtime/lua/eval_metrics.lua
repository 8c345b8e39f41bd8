-- eval_metrics.lua: the deterministic metrics of luact eval, as plain
-- functions under luact.eval.metrics: BLEU (sacrebleu 2.x: tokenizer 13a,
-- exp smoothing, corpus and sentence), ROUGE-L (rouge-score's default
-- tokenizer, LCS precision/recall/F), Levenshtein, trajectory matching in
-- the agentevals modes, retrieval metrics by chunk id, the statistics the
-- reports print (mean with a 95% interval, Wilson interval, percentiles,
-- Cohen's kappa). No effects: everything here is a pure function of its
-- arguments.
local luact, check_opts = ...

luact.eval = luact.eval or {}
local M = {}
luact.eval.metrics = M

---------------------------------------------------------------------------
-- BLEU, as sacrebleu 2.x computes it
---------------------------------------------------------------------------

-- sacrebleu's TokenizerRegexp (the 13a post-tokenizer), in the same order
-- with the same non-overlapping left-to-right substitution (Lua's gsub and
-- Python's re.sub agree on that). Byte patterns give the same bytes as
-- Python's character classes here: the classes are ASCII and a non-ASCII
-- character is never in them.
-- Python's str.split() and str.rstrip() take more than ASCII blanks as
-- whitespace: \x1c-\x1f and, in UTF-8, U+0085, U+00A0, U+1680,
-- U+2000-U+200A, U+2028, U+2029, U+202F, U+205F and U+3000.
local PY_SPACES = { "\194\133", "\194\160", "\225\154\128", "\226\128[\128-\138]", "\226\128[\168\169\175]",
  "\226\129\159", "\227\128\128" }
local function py_spaces_to_blank(s)
  if not s:find("[\28-\31\194\225\226\227]") then return s end
  s = s:gsub("[\28-\31]", " ")
  for _, p in ipairs(PY_SPACES) do s = s:gsub(p, " ") end
  return s
end

-- sacrebleu's BLEU._preprocess_segment: the segment is rstrip()ed (Python
-- whitespace) before the tokenizer sees it, so a trailing "-\n" stays.
-- Byte by byte from the end: a pattern like "%s+$" is quadratic on a
-- model's long run of blanks.
local function py_rstrip(s)
  local e = #s
  while e > 0 do
    local b = s:byte(e)
    if b == 32 or (b >= 9 and b <= 13) or (b >= 28 and b <= 31) then
      e = e - 1
    elseif e >= 2 and (s:sub(e - 1, e) == "\194\133" or s:sub(e - 1, e) == "\194\160") then
      e = e - 2
    elseif e >= 3 and (s:sub(e - 2, e) == "\225\154\128" or s:sub(e - 2, e):find("^\226\128[\128-\138\168\169\175]$")
        or s:sub(e - 2, e) == "\226\129\159" or s:sub(e - 2, e) == "\227\128\128") then
      e = e - 3
    else
      break
    end
  end
  return s:sub(1, e)
end

local function tok_13a(line)
  line = py_rstrip(line)
  line = line:gsub("<skipped>", ""):gsub("%-\n", ""):gsub("\n", " ")
  if line:find("&", 1, true) then
    line = line:gsub("&quot;", '"'):gsub("&amp;", "&"):gsub("&lt;", "<"):gsub("&gt;", ">")
  end
  line = " " .. line .. " "
  -- [{-~[-` -&(-+:-@/]: { | } ~ [ \ ] ^ _ ` space ! " # $ % & ( ) * + : ; < = > ? @ /
  line = line:gsub("([{|}~%[\\%]%^_` !\"#%$%%&%(%)%*%+:;<=>%?@/])", " %1 ")
  line = line:gsub("([^0-9])([%.,])", "%1 %2 ")
  line = line:gsub("([%.,])([^0-9])", " %1 %2")
  line = line:gsub("([0-9])(%-)", "%1 %2 ")
  local out = {}
  for w in py_spaces_to_blank(line):gmatch("%S+") do out[#out + 1] = w end
  return out
end
M.tokenize_13a = function(s)
  if type(s) ~= "string" then error("luact.eval.metrics.tokenize_13a: expected a string", 2) end
  return tok_13a(s)
end

local function ngram_counts(toks, maxn)
  local c = {}
  for n = 1, maxn do
    for i = 1, #toks - n + 1 do
      local g = table.concat(toks, "\1", i, i + n - 1)
      local k = n .. "\0" .. g
      c[k] = (c[k] or 0) + 1
    end
  end
  return c
end

-- Sufficient statistics of one hypothesis against its references: matches
-- and totals per order, hypothesis length and the closest reference length.
local function bleu_stats(hyp, refs)
  local ht = tok_13a(hyp)
  local maxref, reflen, best = {}, nil, nil
  for _, r in ipairs(refs) do
    local rt = tok_13a(r)
    local d = math.abs(#rt - #ht)
    -- sacrebleu: the closest length, the shorter one on a tie
    if not best or d < best or (d == best and #rt < reflen) then best, reflen = d, #rt end
    for k, v in pairs(ngram_counts(rt, 4)) do
      if (maxref[k] or 0) < v then maxref[k] = v end
    end
  end
  local correct, total = { 0, 0, 0, 0 }, { 0, 0, 0, 0 }
  for k, v in pairs(ngram_counts(ht, 4)) do
    local n = tonumber(k:match("^(%d)"))
    total[n] = total[n] + v
    correct[n] = correct[n] + math.min(v, maxref[k] or 0)
  end
  return correct, total, #ht, reflen or 0
end

-- sacrebleu's BLEU.compute_bleu with smooth_method "exp".
local function compute_bleu(correct, total, sys_len, ref_len, effective_order)
  local precisions = { 0, 0, 0, 0 }
  local bp = 1.0
  if sys_len < ref_len then bp = sys_len > 0 and math.exp(1 - ref_len / sys_len) or 0.0 end
  local any = false
  for n = 1, 4 do if correct[n] > 0 then any = true end end
  local res = { precisions = precisions, bp = bp, sys_len = sys_len, ref_len = ref_len,
                counts = correct, totals = total }
  if not any then res.score = 0.0 return res end
  local smooth, eff = 1.0, 4
  for n = 1, 4 do
    if total[n] == 0 then break end
    if effective_order then eff = n end
    if correct[n] == 0 then
      smooth = smooth * 2
      precisions[n] = 100.0 / (smooth * total[n])
    else
      precisions[n] = 100.0 * correct[n] / total[n]
    end
  end
  local s = 0
  for n = 1, eff do s = s + (precisions[n] == 0 and -9999999999 or math.log(precisions[n])) end
  res.score = bp * math.exp(s / eff)
  return res
end

local function as_refs(refs, who)
  if type(refs) == "string" then return { refs } end
  if type(refs) ~= "table" or #refs == 0 then error(who .. ": references must be a string or a non-empty list", 3) end
  return refs
end

--- sentence_bleu(hyp, refs) -> score (0-100), details; effective order on,
-- as sacrebleu.sentence_bleu.
function M.sentence_bleu(hyp, refs)
  if type(hyp) ~= "string" then error("luact.eval.metrics.sentence_bleu: hypothesis must be a string", 2) end
  local c, t, hl, rl = bleu_stats(hyp, as_refs(refs, "luact.eval.metrics.sentence_bleu"))
  local r = compute_bleu(c, t, hl, rl, true)
  return r.score, r
end

--- corpus_bleu(hyps, refs) -> score, details. refs[i] is hyps[i]'s
-- reference (a string) or list of references.
function M.corpus_bleu(hyps, refs)
  if type(hyps) ~= "table" or type(refs) ~= "table" or #hyps ~= #refs then
    error("luact.eval.metrics.corpus_bleu: expected two lists of the same length", 2)
  end
  local c, t, hl, rl = { 0, 0, 0, 0 }, { 0, 0, 0, 0 }, 0, 0
  for i, h in ipairs(hyps) do
    local ci, ti, h1, r1 = bleu_stats(h, as_refs(refs[i], "luact.eval.metrics.corpus_bleu"))
    for n = 1, 4 do c[n], t[n] = c[n] + ci[n], t[n] + ti[n] end
    hl, rl = hl + h1, rl + r1
  end
  local r = compute_bleu(c, t, hl, rl, false)
  return r.score, r
end

---------------------------------------------------------------------------
-- ROUGE-L, as rouge-score computes it (no stemmer)
---------------------------------------------------------------------------

-- rouge_score.tokenize: lower case, every run of characters outside a-z0-9
-- is a separator.
local function rouge_tokens(s)
  local out = {}
  -- Python's lower() makes ASCII of two characters: U+0130 (to i and a
  -- combining dot) and the Kelvin sign U+212A (to k)
  s = s:gsub("\196\176", "i"):gsub("\226\132\170", "k")
  for w in s:lower():gmatch("[a-z0-9]+") do out[#out + 1] = w end
  return out
end

local function lcs_len(a, b)
  if #a == 0 or #b == 0 then return 0 end
  local prev, cur = {}, {}
  for j = 0, #b do prev[j] = 0 end
  for i = 1, #a do
    cur[0] = 0
    local ai = a[i]
    for j = 1, #b do
      if ai == b[j] then cur[j] = prev[j - 1] + 1
      else cur[j] = prev[j] > cur[j - 1] and prev[j] or cur[j - 1] end
    end
    prev, cur = cur, prev
  end
  return prev[#b]
end

--- rouge_l(prediction, target) -> {precision, recall, fmeasure}
-- (rouge_scorer.score(target, prediction)["rougeL"]).
function M.rouge_l(pred, target)
  if type(pred) ~= "string" or type(target) ~= "string" then
    error("luact.eval.metrics.rouge_l: expected two strings (prediction, reference)", 2)
  end
  local p, t = rouge_tokens(pred), rouge_tokens(target)
  if #p == 0 or #t == 0 then return { precision = 0, recall = 0, fmeasure = 0 } end
  local l = lcs_len(t, p)
  local prec, rec = l / #p, l / #t
  local f = (prec + rec) > 0 and 2 * prec * rec / (prec + rec) or 0
  return { precision = prec, recall = rec, fmeasure = f }
end

---------------------------------------------------------------------------
-- Levenshtein over code points (bytes when the text is not UTF-8)
---------------------------------------------------------------------------

local function codepoints(s)
  local out = {}
  if utf8.len(s) then
    for _, c in utf8.codes(s) do out[#out + 1] = c end
  else
    for i = 1, #s do out[i] = s:byte(i) end
  end
  return out
end

function M.levenshtein(a, b)
  if type(a) ~= "string" or type(b) ~= "string" then
    error("luact.eval.metrics.levenshtein: expected two strings", 2)
  end
  local x, y = codepoints(a), codepoints(b)
  local row = {}
  for j = 0, #y do row[j] = j end
  for i = 1, #x do
    local prev = row[0]
    row[0] = i
    for j = 1, #y do
      local cur = row[j]
      local best = prev + (x[i] == y[j] and 0 or 1)
      if row[j] + 1 < best then best = row[j] + 1 end
      if row[j - 1] + 1 < best then best = row[j - 1] + 1 end
      row[j] = best
      prev = cur
    end
  end
  return row[#y]
end

---------------------------------------------------------------------------
-- Trajectories, in the agentevals modes
---------------------------------------------------------------------------

local json = luact.json

local function deep_equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then
    if type(a) == "number" and type(b) == "number" then return a == b end
    return false
  end
  for k, v in pairs(a) do if not deep_equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
M.deep_equal = deep_equal

-- Is every key of small present in big with an equal value?
local function args_within(small, big)
  if type(small) ~= "table" or type(big) ~= "table" then return deep_equal(small, big) end
  for k, v in pairs(small) do if not deep_equal(v, big[k]) then return false end end
  return true
end

local ARG_MODES = { exact = true, ignore = true, subset = true, superset = true }

-- One output call against one reference call: names equal, arguments by mode
-- (subset: the output's arguments are a subset of the reference's).
local function call_matches(out, ref, mode)
  if out.name ~= ref.name then return false end
  if mode == "ignore" then return true end
  local oa, ra = out.args or out.arguments or {}, ref.args or ref.arguments or {}
  if type(oa) == "string" then oa = json.decode(oa) or oa end
  if type(ra) == "string" then ra = json.decode(ra) or ra end
  if mode == "exact" then return deep_equal(oa, ra) end
  if mode == "subset" then return args_within(oa, ra) end
  return args_within(ra, oa)
end

-- Greedy: each call of `need` takes the first unused matching call of
-- `pool`; returns how many found a partner.
local function cover(need, pool, mode, need_is_ref)
  local used, hit = {}, 0
  for _, a in ipairs(need) do
    for j, b in ipairs(pool) do
      if not used[j] then
        local ok
        if need_is_ref then ok = call_matches(b, a, mode) else ok = call_matches(a, b, mode) end
        if ok then used[j] = true hit = hit + 1 break end
      end
    end
  end
  return hit
end

--- trajectory_match(output_calls, reference_calls, {mode=, args=})
-- -> ok, reason. Calls are {name=, args=} tables. mode: "strict" (same
-- calls in the same order), "unordered" (same calls, any order), "subset"
-- (the output calls only reference calls), "superset" (the output has every
-- reference call); args: "exact" (default), "ignore", "subset" (output
-- arguments within the reference's), "superset".
function M.trajectory_match(out, ref, opts)
  opts = opts or {}
  local bad = check_opts(opts, "luact.eval.metrics.trajectory_match")
  if bad then error(bad, 2) end
  local mode, am = opts.mode or "strict", opts.args or "exact"
  if not ({ strict = true, unordered = true, subset = true, superset = true })[mode] then
    error("luact.eval.metrics.trajectory_match: mode must be strict, unordered, subset or superset", 2)
  end
  if not ARG_MODES[am] then
    error("luact.eval.metrics.trajectory_match: args must be exact, ignore, subset or superset", 2)
  end
  if type(out) ~= "table" or type(ref) ~= "table" then
    error("luact.eval.metrics.trajectory_match: expected two lists of calls", 2)
  end
  local names = function(l) local t = {} for i, c in ipairs(l) do t[i] = tostring(c.name) end return table.concat(t, ",") end
  if mode == "strict" then
    if #out ~= #ref then
      return false, string.format("%d calls [%s], expected %d [%s]", #out, names(out), #ref, names(ref))
    end
    for i = 1, #ref do
      if not call_matches(out[i], ref[i], am) then
        return false, string.format("call %d is %s, expected %s (args %s)", i, tostring(out[i].name), tostring(ref[i].name), am)
      end
    end
    return true, "same calls in order"
  elseif mode == "unordered" then
    if #out ~= #ref or cover(ref, out, am, true) ~= #ref then
      return false, string.format("calls [%s] are not [%s] in some order", names(out), names(ref))
    end
    return true, "same calls"
  elseif mode == "superset" then
    local hit = cover(ref, out, am, true)
    if hit < #ref then return false, string.format("%d of %d expected calls made ([%s])", hit, #ref, names(out)) end
    return true, "every expected call made"
  else
    local hit = cover(out, ref, am, false)
    if hit < #out then return false, string.format("%d of %d calls are not expected ([%s])", #out - hit, #out, names(out)) end
    return true, "only expected calls"
  end
end

---------------------------------------------------------------------------
-- Retrieval, by chunk id
---------------------------------------------------------------------------

local function idset(l) local s = {} for _, v in ipairs(l or {}) do s[tostring(v)] = true end return s end

--- recall_at_k(retrieved, relevant, k) -> share of relevant ids in the top k
function M.recall_at_k(retrieved, relevant, k)
  local rel = idset(relevant)
  local n = 0
  for _ in pairs(rel) do n = n + 1 end
  if n == 0 then return 1.0 end
  k = k or #retrieved
  local hit, seen = 0, {}
  for i = 1, math.min(k, #retrieved) do
    local id = tostring(retrieved[i])
    if rel[id] and not seen[id] then hit = hit + 1 seen[id] = true end
  end
  return hit / n
end

--- context_precision_at_k(retrieved, relevant, k): ragas's context
-- precision with ids: sum over i<=k of precision@i * rel_i, divided by the
-- number of relevant items in the top k (0 when there is none).
function M.context_precision_at_k(retrieved, relevant, k)
  local rel = idset(relevant)
  k = math.min(k or #retrieved, #retrieved)
  local hits, sum = 0, 0
  for i = 1, k do
    if rel[tostring(retrieved[i])] then
      hits = hits + 1
      sum = sum + hits / i
    end
  end
  return hits == 0 and 0 or sum / hits
end

---------------------------------------------------------------------------
-- Statistics for the reports
---------------------------------------------------------------------------

--- mean_ci(xs) -> mean, low, high (normal 95% interval of the mean)
function M.mean_ci(xs)
  local n = #xs
  if n == 0 then return nil end
  local s = 0
  for _, x in ipairs(xs) do s = s + x end
  local m = s / n
  if n == 1 then return m, m, m end
  local v = 0
  for _, x in ipairs(xs) do v = v + (x - m) ^ 2 end
  local h = 1.96 * math.sqrt(v / (n - 1) / n)
  return m, m - h, m + h
end

--- wilson(k, n) -> low, high: the 95% Wilson interval of a pass rate
function M.wilson(k, n)
  if n == 0 then return 0, 1 end
  local z, p = 1.96, k / n
  local d = 1 + z * z / n
  local c = (p + z * z / (2 * n)) / d
  local h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
  return math.max(0, c - h), math.min(1, c + h)
end

--- percentile(xs, p) -> the p-th percentile (linear interpolation, p in 0-100)
function M.percentile(xs, p)
  if #xs == 0 then return nil end
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  local r = (p / 100) * (#s - 1) + 1
  local lo = math.floor(r)
  local hi = math.min(lo + 1, #s)
  return s[lo] + (s[hi] - s[lo]) * (r - lo)
end

--- cohen_kappa(a, b) -> kappa, agreement: two equal-length lists of
-- labels (booleans or strings). Kappa is 1 when both raters agree and
-- chance agreement is 1 too.
function M.cohen_kappa(a, b)
  if type(a) ~= "table" or type(b) ~= "table" or #a ~= #b then
    error("luact.eval.metrics.cohen_kappa: expected two lists of the same length", 2)
  end
  local n = #a
  if n == 0 then return nil, nil end
  local agree, ca, cb, labels = 0, {}, {}, {}
  for i = 1, n do
    local x, y = tostring(a[i]), tostring(b[i])
    if x == y then agree = agree + 1 end
    ca[x] = (ca[x] or 0) + 1
    cb[y] = (cb[y] or 0) + 1
    labels[x], labels[y] = true, true
  end
  local po, pe = agree / n, 0
  for l in pairs(labels) do pe = pe + ((ca[l] or 0) / n) * ((cb[l] or 0) / n) end
  if pe >= 1 then return 1.0, po end
  return (po - pe) / (1 - pe), po
end

--- pass_hat_k(c, n, k): the chance that k trials drawn from n (c passed)
-- all pass: C(c,k)/C(n,k) (tau-bench's pass^k).
function M.pass_hat_k(c, n, k)
  if k > n then return nil end
  local r = 1.0
  for i = 0, k - 1 do r = r * (c - i) / (n - i) end
  return math.max(0, r)
end

