-- tests/mcp/conformance_server/tools.lua: the tools the conformance suite's
-- server scenarios call (names and shapes from its scenario descriptions),
-- served by `luact mcp serve --http` in tests/mcp/check_mcp_conformance.c.
-- The rest (content, logging, sampling, resources, prompts) is more.lua.
local none = { type = "object", properties = {} }

-- ctx.elicit(message, schema) asks the client; the text reports the result.
local function elicited(ctx, message, schema)
  local r, err = ctx.elicit(message, schema)
  if not r then return nil, err end
  return string.format("Elicitation completed: action=%s, content=%s", r.action,
    luact.json.encode(r.content or {}))
end
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
  luact.tool { name = "test_elicitation", description = "Asks the user for a username and email.",
    params = { type = "object", properties = { message = { type = "string" } }, required = { "message" } },
    fn = function(a, ctx)
      return elicited(ctx, a.message, { type = "object",
        properties = { username = { type = "string", description = "User's response" },
                       email = { type = "string", description = "User's email address" } },
        required = { "username", "email" } })
    end },
  luact.tool { name = "test_elicitation_sep1034_defaults", description = "Asks with defaults (SEP-1034).",
    params = none,
    fn = function(_, ctx)
      return elicited(ctx, "Please review and update the form fields with defaults", { type = "object",
        properties = {
          name = { type = "string", default = "John Doe" },
          age = { type = "integer", default = 30 },
          score = { type = "number", default = 95.5 },
          status = { type = "string", enum = { "active", "inactive", "pending" }, default = "active" },
          verified = { type = "boolean", default = true },
        } })
    end },
  luact.tool { name = "test_elicitation_sep1330_enums", description = "Asks with every enum form (SEP-1330).",
    params = none,
    fn = function(_, ctx)
      return elicited(ctx, "Please select options from the enum fields", { type = "object",
        properties = {
          untitledSingle = { type = "string", enum = { "option1", "option2", "option3" } },
          titledSingle = { type = "string", oneOf = {
            { const = "value1", title = "First Option" }, { const = "value2", title = "Second Option" },
            { const = "value3", title = "Third Option" } } },
          legacyEnum = { type = "string", enum = { "opt1", "opt2", "opt3" },
            enumNames = { "Option One", "Option Two", "Option Three" } },
          untitledMulti = { type = "array", items = { type = "string", enum = { "option1", "option2", "option3" } } },
          titledMulti = { type = "array", items = { anyOf = {
            { const = "value1", title = "First Choice" }, { const = "value2", title = "Second Choice" },
            { const = "value3", title = "Third Choice" } } } },
        } })
    end },
}
