-- examples/evals/recipes-csv.eval.lua: the recipe prompt on a
-- promptfoo-style CSV (columns are variables, __expected* columns are
-- assertions such as "icontains-all: a, b" or "is-json").
local model = os.getenv("LUACT_MODEL") or "openai:gpt-4o-mini"
return {
  description = "recipes from a promptfoo CSV",
  targets = {
    { name = "v1", model = model, system = "You are a cook. Answer in JSON only.", params = { temperature = 0 },
      prompt = "Ingredients: {{ingredients}}. Do not suggest: {{except}}. Give one recipe that uses all the " ..
        "ingredients as JSON {recipe_name, recipe_ingredients, recipes}." },
  },
  dataset = "recipes.csv",
}
