-- examples/react_wiki/agent.lua: the ReAct paper's HotpotQA setup (Yao et
-- et al. 2022) on luact.react in text mode: the model may only search,
-- lookup and finish, over a small local encyclopedia in docs/ (one file
-- per article: title line, blank line, paragraphs).
--
--   luact run examples/react_wiki/agent.lua ["question"]
--   luact run --json --trace run.jsonl examples/react_wiki/agent.lua
--
-- Offline, run-offline.sh points it at lc-mockllm (model replies scripted
-- in mock.json). With OPENAI_API_KEY set and no OPENAI_BASE_URL it talks to
-- the real API (model from LUACT_MODEL, default openai:gpt-4o-mini).
-- Steps print live on stderr on a terminal; the answer goes to stderr too,
-- so that stdout carries only the --json result.

local question = arg[1] or
  "What is the elevation range for the area that the eastern sector of the Colorado orogeny extends into?"
local model = os.getenv("LUACT_MODEL") or "openai:gpt-4o-mini"
local here = (arg[0] or ""):match("^(.*)/[^/]*$") or "."

-- ---- the document collection ----

local root = assert(luact.files.root(here .. "/docs"))
local docs = {} -- { title=, paragraphs={...} }
for _, e in ipairs(assert(root:list("."))) do
  if e.type == "file" and e.name:match("%.txt$") then
    local text = assert(root:read(e.name))
    local title, body = text:match("^([^\n]+)\n%s*\n(.*)$")
    if title then
      local paras = {}
      for p in (body .. "\n\n"):gmatch("(.-)\n%s*\n") do
        p = p:gsub("%s+", " "):match("^%s*(.-)%s*$")
        if p ~= "" then paras[#paras + 1] = p end
      end
      docs[#docs + 1] = { title = title, paragraphs = paras }
    end
  end
end
table.sort(docs, function(a, b) return a.title < b.title end)

local function norm(s) return (s:lower():gsub("[%p%s]+", " "):match("^%s*(.-)%s*$")) end

local function words(s)
  local w = {}
  for x in norm(s):gmatch("%S+") do w[x] = true end
  return w
end

-- ---- the paper's actions ----

local current, lookup_kw, lookup_i -- the last searched page, lookup cursor

local search = luact.tool{
  name = "search",
  description = "Search an entity; returns the first paragraph of its article, or similar titles.",
  params = {
    type = "object",
    properties = { entity = { type = "string", description = "the title to look for" } },
    required = { "entity" },
  },
  fn = function(a)
    local want = norm(a.entity)
    for _, d in ipairs(docs) do
      if norm(d.title) == want then
        current, lookup_kw, lookup_i = d, nil, 0
        return d.paragraphs[1]
      end
    end
    -- Titles sharing the most words with the query, like the paper's
    -- "Could not find [X]. Similar: [...]".
    local q, scored = words(a.entity), {}
    for _, d in ipairs(docs) do
      local n = 0
      for w in pairs(words(d.title)) do if q[w] then n = n + 1 end end
      if n > 0 then scored[#scored + 1] = { d.title, n } end
    end
    table.sort(scored, function(x, y) return x[2] > y[2] or (x[2] == y[2] and x[1] < y[1]) end)
    local sim = {}
    for i = 1, math.min(5, #scored) do sim[i] = "'" .. scored[i][1] .. "'" end
    return string.format("Could not find [%s]. Similar: [%s].", a.entity, table.concat(sim, ", "))
  end,
}

local lookup = luact.tool{
  name = "lookup",
  description = "Return the next sentence containing keyword in the last searched article.",
  params = {
    type = "object",
    properties = { keyword = { type = "string", description = "a word or phrase" } },
    required = { "keyword" },
  },
  fn = function(a)
    if not current then return "No article yet: use search first." end
    local kw = a.keyword:lower()
    if kw ~= lookup_kw then lookup_kw, lookup_i = kw, 0 end
    local hits = {}
    for _, p in ipairs(current.paragraphs) do
      for s in (p .. " "):gmatch("(.-[%.!?])%s+") do
        if s:lower():find(kw, 1, true) then hits[#hits + 1] = s end
      end
    end
    lookup_i = lookup_i + 1
    if lookup_i > #hits then return "No more results." end
    return string.format("(Result %d / %d) %s", lookup_i, #hits, hits[lookup_i])
  end,
}

-- ---- two few-shot examples in the paper's format ----

local examples = {
  [==[Question: Musician and satirist Allie Goertz wrote a song about the "The Simpsons" character Milhouse, who Matt Groening named after who?
Thought 1: The question simplifies to "The Simpsons" character Milhouse is named after who. I only need to search Milhouse and find who it is named after.
Action 1: search[Milhouse]
Observation 1: Milhouse Mussolini Van Houten is a recurring character in the Fox animated television series The Simpsons voiced by Pamela Hayden and created by Matt Groening.
Thought 2: The paragraph does not tell who Milhouse is named after, maybe I can look up "named after".
Action 2: lookup[named after]
Observation 2: (Result 1 / 1) Milhouse was named after U.S. president Richard Nixon, whose middle name was Milhous.
Thought 3: Milhouse was named after U.S. president Richard Nixon, so the answer is Richard Nixon.
Action 3: finish[Richard Nixon]]==],
  [==[Question: Which magazine was started first Arthur's Magazine or First for Women?
Thought 1: I need to search Arthur's Magazine and First for Women, and find which was started first.
Action 1: search[Arthur's Magazine]
Observation 1: Arthur's Magazine (1844-1846) was an American literary periodical published in Philadelphia in the 19th century.
Thought 2: Arthur's Magazine was started in 1844. I need to search First for Women next.
Action 2: search[First for Women]
Observation 2: First for Women is a woman's magazine published by Bauer Media Group in the USA. The magazine was started in 1989.
Thought 3: First for Women was started in 1989. 1844 (Arthur's Magazine) < 1989 (First for Women), so Arthur's Magazine was started first.
Action 3: finish[Arthur's Magazine]]==],
}

local r = luact.react{
  model = model,
  mode = "text",
  tools = { search, lookup },
  instructions = "Answer the question using the encyclopedia. Search finds an article by its exact title; "
    .. "lookup finds sentences in the article you searched last. Answer with a short phrase.",
  examples = examples,
  question = question,
  temperature = 0,
  limits = { steps = 8, max_invalid = 3 },
  final_answer_on_limit = true,
}
io.stderr:write(string.format("answer: %s  [%s%s]\n", tostring(r.answer), r.status,
  r.reason and (": " .. r.reason) or ""))
return r
