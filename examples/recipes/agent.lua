-- examples/recipes/agent.lua: structured output with luact.llm.json.
-- Given {ingredients, except_recipe} it returns {recipe_name,
-- recipe_ingredients, recipes}: a recipe that uses the ingredients, its
-- ingredient list, and other recipes that would fit. The JSON schema is
-- checked by luact.schema; the rule the schema cannot say (none of the
-- excluded recipes, and the recipe uses the ingredients) is checked in Lua.
-- A reply that fails either is sent back with the errors, at most twice.
--
--   luact run examples/recipes/agent.lua '{"ingredients": ["eggs", "spinach", "feta"],
--                                          "except_recipe": ["Spinach omelette"]}'
--   examples/recipes/run-offline.sh     (scripted model: lc-mockllm, mock.json)
local input = luact.json.decode(arg[1] or
  '{"ingredients": ["eggs", "spinach", "feta"], "except_recipe": ["Spinach omelette", "Spanakopita"]}')
local model = os.getenv("LUACT_MODEL") or "openai:gpt-4o-mini"

local schema = {
  type = "object",
  properties = {
    recipe_name = { type = "string", minLength = 1 },
    recipe_ingredients = { type = "array", minItems = 1, items = { type = "string" } },
    recipes = { type = "array", items = { type = "string" }, description = "other recipes that fit" },
  },
  required = { "recipe_name", "recipe_ingredients", "recipes" },
  additionalProperties = false,
}

local function norm(s) return (s:lower():gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")) end
local excluded = {}
for _, r in ipairs(input.except_recipe or {}) do excluded[norm(r)] = r end

-- What a schema cannot say: the exclusions, and that the recipe uses
-- every ingredient it was given.
local function acceptable(v)
  for _, name in ipairs { v.recipe_name, table.unpack(v.recipes) } do
    if excluded[norm(name)] then return nil, string.format("'%s' is excluded (except_recipe)", name) end
  end
  local have = norm(table.concat(v.recipe_ingredients, " | "))
  for _, ing in ipairs(input.ingredients) do
    if not have:find(norm(ing), 1, true) then
      return nil, string.format("recipe_ingredients must include '%s'", ing)
    end
  end
  return true
end

local attempt = 0
local value, err, code, info = luact.llm.json {
  model = model, temperature = 0, schema = schema, schema_name = "recipe", repairs = 2,
  validate = acceptable,
  system = "You are a cook. Answer in JSON only.",
  prompt = string.format("Ingredients: %s. Do not suggest: %s. Give one recipe that uses all the " ..
    "ingredients (recipe_name, recipe_ingredients) and a few other recipes that fit (recipes).",
    table.concat(input.ingredients, ", "), table.concat(input.except_recipe or {}, ", ")),
}
if value then info = err end -- on success the second result is the info
for i, e in ipairs(info and info.errors or {}) do
  io.write(string.format("attempt %d rejected: %s\n", i, e))
end
if not value then return nil, string.format("%s (%s)", err, code) end
io.write(string.format("accepted after %d attempt%s:\n", info.attempts, info.attempts == 1 and "" or "s"))
io.write(luact.json.encode(value), "\n")
return 0
