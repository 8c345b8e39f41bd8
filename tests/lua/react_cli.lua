-- react_cli.lua: paired with check_react.c cli_json_and_trace: one text-mode
-- run against the mock at $BASE; the result table is the script's value.
local search = luact.tool{
  name = "search", description = "Search an entity.",
  params = { type = "object", properties = { q = { type = "string" } }, required = { "q" } },
  fn = function(a) return "result for " .. a.q end,
}
return luact.react{
  model = "openai:mock-gpt", base_url = os.getenv("BASE"), retries = 0,
  mode = "text", tools = { search }, question = "How cold is Oslo?",
}
