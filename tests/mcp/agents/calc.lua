-- A declared tool: served as an MCP tool with readOnlyHint (pure).
return luact.tool {
  name = "add", description = "Adds two numbers.",
  params = { type = "object", properties = { a = { type = "number" }, b = { type = "number" } },
    required = { "a", "b" } },
  fn = function(a) return { sum = a.a + a.b } end,
}
