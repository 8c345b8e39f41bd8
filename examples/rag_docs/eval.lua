-- examples/rag_docs/eval.lua: recall@k and context precision of the
-- collection over docs/ on the questions in eval.json. A hit is relevant
-- when its source is one a question names and its text contains the
-- given phrase (chunk ids change whenever docs/ does; these do not).
--   recall@k: share of questions with at least one relevant hit in the top k
--   context precision: mean over questions of the precision at each
--     relevant hit's rank (average precision over the top k), as RAGAS has it
-- Offline: examples/rag_docs/run-offline.sh examples/rag_docs/eval.lua
local here = (arg[0] or ""):match("^(.*)/[^/]*$") or "."
local spec = assert(luact.json.decode(assert(assert(io.open(here .. "/eval.json")):read("a"))))
local db = os.tmpname()
os.remove(db)
local ix = assert(luact.retrieval.open {
  path = db, model = os.getenv("LUACT_EMBED_MODEL") or "openai:text-embedding-3-small",
  chunk_size = 800, chunk_overlap = 120 })
assert(ix:add_dir(here .. "/../../docs"))
local k, found, ap_sum = spec.k, 0, 0
for _, q in ipairs(spec.questions) do
  local hits = assert(ix:query(q.question, { k = k }))
  local rel, ap = 0, 0
  for rank, h in ipairs(hits) do
    local ok = false
    for _, r in ipairs(q.relevant) do
      if h.source == r.source and h.text:find(r.contains, 1, true) then ok = true end
    end
    if ok then rel = rel + 1; ap = ap + rel / rank end
  end
  if rel > 0 then found = found + 1; ap_sum = ap_sum + ap / rel end
  print(string.format("%-70s %s", q.question:sub(1, 70), rel > 0 and "found" or "missed"))
end
local n = #spec.questions
print(string.format("recall@%d = %.2f, context precision = %.2f (%d questions, %d chunks)",
  k, found / n, ap_sum / n, n, ix:count()))
os.remove(db); os.remove(db .. ".hnsw")
