-- tests/mcp/conformance_server/tools.lua: the tools the conformance suite's
-- server scenarios call (names and shapes from its scenario descriptions),
-- served by `luact mcp serve --http` in tests/mcp/check_mcp_conformance.c.
-- What luact mcp serve cannot express (image, audio and resource content,
-- logging, sampling, elicitation) is listed as an
-- expected failure in tests/mcp/CONFORMANCE.md instead of faked here.
local none = { type = "object", properties = {} }
return {
  luact.tool { name = "test_simple_text", description = "Returns simple text.", effect = "pure",
    params = none,
    fn = function() return "This is a simple text response for testing." end },
  luact.tool { name = "test_error_handling", description = "Always fails.", effect = "pure",
    params = none,
    fn = function() return nil, "This tool intentionally returns an error for testing" end },
  luact.tool { name = "test_tool_with_progress", description = "Reports progress three times.",
    effect = "pure", params = none,
    fn = function(_, ctx)
      for i = 0, 2 do
        ctx.progress(i * 50, 100, "step " .. (i + 1))
        luact.sleep(0.05)
      end
      return "Progress completed"
    end },
  luact.tool { name = "json_schema_2020_12_tool", description = "Tool with JSON Schema 2020-12 features",
    effect = "pure",
    params = {
      ["$schema"] = "https://json-schema.org/draft/2020-12/schema",
      type = "object",
      ["$defs"] = { address = { type = "object",
        properties = { street = { type = "string" }, city = { type = "string" } } } },
      properties = { name = { type = "string" }, address = { ["$ref"] = "#/$defs/address" } },
      additionalProperties = false,
    },
    fn = function(a) return { name = a.name, address = a.address } end },
}
