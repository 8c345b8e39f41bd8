-- examples/evals/recipes.eval.lua: two versions of the recipe prompt
-- (examples/recipes) on one dataset: JSON that fits the schema, the
-- ingredients used, closeness to a reference name (ROUGE-L), a rubric
-- judge, and the two versions judged pairwise (MT-Bench: both orders).
--
--   examples/evals/run-offline.sh      (lc-mockllm answers for the model and the judge)
local schema = {
  type = "object",
  properties = {
    recipe_name = { type = "string", minLength = 1 },
    recipe_ingredients = { type = "array", minItems = 1, items = { type = "string" } },
    recipes = { type = "array", items = { type = "string" } },
  },
  required = { "recipe_name", "recipe_ingredients", "recipes" },
}
local model = os.getenv("LUACT_MODEL") or "openai:gpt-4o-mini"
local prompt = "Ingredients: {{ingredients}}. Do not suggest: {{except}}. Give one recipe that uses all the " ..
  "ingredients as JSON {recipe_name, recipe_ingredients, recipes}."
local prompt2 = "Ingredients: {{ingredients}}. Avoid: {{except}}. One recipe using all of them, as JSON " ..
  "{recipe_name, recipe_ingredients, recipes}."

return {
  description = "recipes: prompt v1 (production) against v2 (staging)",
  targets = {
    { name = "v1", model = model, system = "You are a cook. Answer in JSON only.", prompt = prompt,
      params = { temperature = 0 }, label = "production" },
    { name = "v2", model = model, system = "You are a chef. Answer in JSON only, be brief.", prompt = prompt2,
      params = { temperature = 0 }, label = "staging" },
  },
  dataset = "recipes.jsonl",
  assert = {
    { type = "is-json", schema = schema, weight = 2 },
    { type = "lua", name = "recipe name close to the reference", threshold = 0.3,
      value = function(output, case)
        local v = luact.json.decode(output)
        if type(v) ~= "table" or type(v.recipe_name) ~= "string" then return 0, "no recipe_name" end
        local r = luact.eval.metrics.rouge_l(v.recipe_name, case.expected)
        return r.fmeasure, string.format("ROUGE-L F %.3f against %q", r.fmeasure, case.expected)
      end },
    { type = "llm-rubric", value = "The recipe uses every listed ingredient and is not one of the excluded dishes." },
    { type = "latency", value = 30000, weight = 0 },
    { type = "cost", value = 0.01, weight = 0 },
  },
  judge = { model = model },
  prices = { [model] = { input = 0.15, output = 0.60 } },
  pairwise = { a = "v1", b = "v2" },
  concurrency = 4,
}
