-- examples/hello: a ReAct agent with one tool. Offline: ./run-offline.sh
local add = luact.tool{
  name = "add", description = "Adds two numbers.",
  params = { type = "object", properties = { a = { type = "number" }, b = { type = "number" } }, required = { "a", "b" } },
  fn = function(args) return args.a + args.b end,
}
local r = luact.react{ model = os.getenv("LUACT_MODEL") or "openai:gpt-4o-mini",
  tools = { add }, question = arg[1] or "What is 17 + 25?" }
print(r.status, r.answer or r.reason)
return r -- luact run exits 1 when the run failed, 5 when it hit a limit
