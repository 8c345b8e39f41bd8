-- examples/evals/support.eval.lua: a small retrieval-augmented support
-- bot. The target retrieves two chunks by word overlap and answers from
-- them; the eval scores retrieval by chunk id (recall@k, context
-- precision@k), the answer against the reference (ROUGE-L, BLEU) and, with
-- the judge, ragas's faithfulness, answer relevancy, context recall and
-- context relevance.
local model = os.getenv("LUACT_MODEL") or "openai:gpt-4o-mini"
local chunks = {
  { id = "c1", text = "Returns are accepted within 30 days of delivery: you have 30 days to return an item." },
  { id = "c2", text = "Final-sale items cannot be returned." },
  { id = "c3", text = "Refunds are issued to the original payment method within 5 business days after the parcel arrives." },
  { id = "c4", text = "Shipping is free for orders over 50 euros." },
  { id = "c5", text = "Return labels are sent by email." },
}

local function words(s)
  local w = {}
  for x in s:lower():gmatch("[%a%d%-]+") do if #x > 2 then w[x] = true end end
  return w
end

local function retrieve(q, k)
  local qw, scored = words(q), {}
  for i, c in ipairs(chunks) do
    local n = 0
    for x in pairs(words(c.text)) do if qw[x] then n = n + 1 end end
    scored[#scored + 1] = { c = c, n = n, i = i }
  end
  table.sort(scored, function(a, b) if a.n ~= b.n then return a.n > b.n end return a.i < b.i end)
  local out = {}
  for i = 1, k do out[i] = scored[i].c end
  return out
end

return {
  description = "support bot: retrieval, answer, ragas metrics",
  targets = {
    { name = "rag", model = model, version = { chunks = chunks, system = "Answer from the context only." },
      run = function(case)
        local top = retrieve(case.input, 2)
        local ids, ctx = {}, {}
        for i, c in ipairs(top) do ids[i], ctx[i] = c.id, c.text end
        local r, err, code = luact.llm.chat { model = model, temperature = 0, system = "Answer from the context only.",
          prompt = "Context:\n" .. table.concat(ctx, "\n") .. "\n\nQuestion: " .. case.input }
        if not r then error(err .. " (" .. tostring(code) .. ")") end
        return { output = r.text, retrieved = ids, context = ctx, latency_ms = r.latency_ms,
                 usage = r.usage, cost = luact.eval.price({ [model] = { input = 0.15, output = 0.6 } }, model, r.usage) }
      end },
  },
  dataset = "support.jsonl",
  assert = {
    { type = "recall@k", k = 2 },
    { type = "context-precision@k", k = 2, threshold = 0.5 },
    { type = "rouge-l", threshold = 0.3 },
    { type = "bleu", threshold = 0.05 },
    { type = "faithfulness", threshold = 0.8 },
    { type = "answer-relevancy", threshold = 0.1 },
    { type = "context-recall", threshold = 0.5 },
    { type = "context-relevance", threshold = 0.5 },
  },
  judge = { model = model },
  prices = { [model] = { input = 0.15, output = 0.60 } },
}
