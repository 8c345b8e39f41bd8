-- tests/mcp/conformance_server/more.lua: what the conformance suite's
-- server scenarios ask beyond plain tools (names and shapes from their
-- descriptions): non-text content, logging, sampling, resources,
-- resource templates, subscriptions, prompts and completions.
local none = { type = "object", properties = {} }
local mcp = luact.mcp
-- a 1x1 red PNG and a short silent WAV
local PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
local WAV = "UklGRjQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YRAAAAAAAAAAAAAAAAAAAAAAAAAA"

return {
  luact.tool { name = "test_image_content", description = "Returns an image.", effect = "pure",
    params = none,
    fn = function() return mcp.content { { type = "image", data = PNG, mime_type = "image/png" } } end },
  luact.tool { name = "test_audio_content", description = "Returns audio.", effect = "pure",
    params = none,
    fn = function() return mcp.content { { type = "audio", data = WAV, mime_type = "audio/wav" } } end },
  luact.tool { name = "test_embedded_resource", description = "Returns an embedded resource.",
    effect = "pure", params = none,
    fn = function()
      return mcp.content { { type = "resource", uri = "test://embedded-resource", mime_type = "text/plain",
        text = "This is an embedded resource content." } }
    end },
  luact.tool { name = "test_multiple_content_types", description = "Returns text, an image and a resource.",
    effect = "pure", params = none,
    fn = function()
      return mcp.content { "Multiple content types test:",
        { type = "image", data = PNG, mime_type = "image/png" },
        { type = "resource", uri = "test://mixed-content-resource", mime_type = "application/json",
          text = luact.json.encode { test = "data", value = 123 } } }
    end },
  luact.tool { name = "test_tool_with_logging", description = "Logs three messages while it runs.",
    effect = "pure", params = none,
    fn = function(_, ctx)
      ctx.log("info", "Tool execution started")
      luact.sleep(0.05)
      mcp.log("info", "Tool processing data") -- the same from anywhere in the call's run
      luact.sleep(0.05)
      ctx.log("info", "Tool execution completed")
      return "Logging completed"
    end },
  luact.tool { name = "test_sampling", description = "Asks the client's model.",
    params = { type = "object", properties = { prompt = { type = "string" } }, required = { "prompt" } },
    fn = function(a, ctx)
      local r, err = ctx.sample { messages = { { role = "user", content = a.prompt } }, max_tokens = 100 }
      if not r then return nil, err end
      return "LLM response: " .. tostring(r.text)
    end },
  -- SEP-1699 polling: the call's POST stream ends at once; the answer
  -- comes on the client's GET with Last-Event-ID
  luact.tool { name = "test_reconnection", description = "Closes its stream, then answers.",
    effect = "pure", params = none,
    fn = function(_, ctx)
      ctx.close_stream(500)
      luact.sleep(0.1)
      return "Reconnection test completed"
    end },

  resources = {
    { uri = "test://static-text", name = "static-text", description = "A static text resource.",
      mime_type = "text/plain", text = "This is the content of the static text resource." },
    { uri = "test://static-binary", name = "static-binary", description = "A static binary resource.",
      mime_type = "image/png", blob = PNG },
    { uri = "test://watched-resource", name = "watched-resource", description = "A resource to subscribe to.",
      mime_type = "text/plain", read = function() return "watched" end },
  },
  templates = {
    { uri_template = "test://template/{id}/data", name = "template-data",
      description = "Data for an id.", mime_type = "application/json",
      read = function(_, v)
        return luact.json.encode { id = v.id, templateTest = true, data = "Data for ID: " .. v.id }
      end,
      complete = { id = { "1", "12", "123" } } },
  },
  prompts = {
    { name = "test_simple_prompt", description = "A simple prompt.",
      get = function() return "This is a simple prompt for testing." end },
    { name = "test_prompt_with_arguments", description = "A prompt with two arguments.",
      arguments = { { name = "arg1", description = "First test argument", required = true },
                    { name = "arg2", description = "Second test argument", required = true } },
      get = function(a) return string.format("Prompt with arguments: arg1='%s', arg2='%s'", a.arg1, a.arg2) end,
      complete = { arg1 = function(value) return { value .. "-one", value .. "-two" } end } },
    { name = "test_prompt_with_embedded_resource", description = "A prompt embedding a resource.",
      arguments = { { name = "resourceUri", description = "URI of the resource to embed", required = true } },
      get = function(a)
        return { { role = "user", content = { type = "resource", uri = a.resourceUri, mime_type = "text/plain",
                   text = "Embedded resource content for testing." } },
                 { role = "user", content = "Please process the embedded resource above." } }
      end },
    { name = "test_prompt_with_image", description = "A prompt with an image.",
      get = function()
        return { { role = "user", content = { type = "image", data = PNG, mime_type = "image/png" } },
                 { role = "user", content = "Please analyze the image above." } }
      end },
  },
}
