-- Served by `luact mcp serve` for tests/mcp/sdk_features.mjs (the official
-- SDK client) and tests/mcp/raw_server.mjs (a hostile raw client):
-- resources, a template, prompts with completions, non-text content,
-- logging, sampling and subscriptions.
local mcp = luact.mcp
local PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
local notes = { monday = "gym", tuesday = "chess" }
local version = 1
local none = { type = "object", properties = {} }

return {
  luact.tool { name = "picture", description = "A caption, an image and a link.", effect = "pure",
    params = none,
    fn = function()
      return mcp.content { "a red dot", { type = "image", data = PNG, mime_type = "image/png" },
        { type = "resource_link", uri = "notes://monday", name = "monday" } }
    end },
  luact.tool { name = "chatty", description = "Logs at each level it is given.", effect = "pure",
    params = none,
    fn = function(_, ctx)
      local sent = {}
      for _, l in ipairs { "debug", "info", "warning", "error" } do
        -- from a child task of the call too
        local ok = select(2, luact.wait(luact.spawn(function() return mcp.log(l, { level = l }, "chatty") end)))
        sent[#sent + 1] = l .. "=" .. tostring(ok)
      end
      return table.concat(sent, ",")
    end },
  luact.tool { name = "ask_model", description = "Asks the client's model.",
    params = { type = "object", properties = { q = { type = "string" } }, required = { "q" } },
    fn = function(a, ctx)
      local r, e, code = ctx.sample { messages = { { role = "user", content = a.q } }, system = "Be brief.",
        max_tokens = 50, model_hint = "claude" }
      if not r then return "sample failed: " .. tostring(e) .. " (" .. tostring(code) .. ")" end
      return string.format("model %s said %s (%s)", tostring(r.model), tostring(r.text), tostring(r.stop_reason))
    end },
  luact.tool { name = "hold", description = "Waits until cancelled.", effect = "pure", params = none,
    fn = function(_, ctx) ctx.progress(0, 1, "holding") luact.sleep(60) return "held" end },
  -- closes its POST stream, reports progress and answers: the SDK client
  -- gets both by resuming with Last-Event-ID (HTTP); over stdio a no-op
  luact.tool { name = "patient", description = "Closes its stream, then answers.", effect = "pure",
    params = none,
    fn = function(_, ctx)
      local closed = ctx.close_stream(10)
      ctx.progress(1, 2, "halfway")
      luact.sleep(0.05)
      return "closed=" .. tostring(closed)
    end },
  luact.tool { name = "touch", description = "Changes a note and tells its subscribers.",
    params = { type = "object", properties = { day = { type = "string" } }, required = { "day" } },
    fn = function(a)
      version = version + 1
      notes[a.day] = "changed " .. version
      return "told " .. mcp.resource_updated("notes://" .. a.day)
    end },

  resources = {
    { uri = "info://about", name = "about", description = "What this server is.", mime_type = "text/plain",
      text = "luact test server" },
    { uri = "info://dot", name = "dot", mime_type = "image/png", blob = PNG },
    { uri = "info://broken", name = "broken", read = function() return nil, "disk on fire" end },
    { uri = "info://bad", name = "bad", read = function() return { blob = "not base64!" } end },
  },
  templates = {
    { uri_template = "notes://{day}", name = "notes", description = "A day's note.", mime_type = "text/plain",
      read = function(uri, v)
        luact.sleep(0) -- a read may wait like any run
        local n = notes[v.day]
        if not n then return nil, "no note for " .. v.day end
        return n
      end,
      complete = { day = function(value) local out = {}
        for d in pairs(notes) do if d:sub(1, #value) == value then out[#out + 1] = d end end
        table.sort(out)
        return out
      end } },
  },
  prompts = {
    { name = "plan", description = "Plans a day.",
      arguments = { { name = "day", description = "Which day", required = true }, { name = "mood" } },
      get = function(a)
        return { { role = "assistant", content = "I plan days." },
                 { role = "user", content = "Plan " .. a.day .. (a.mood and (" feeling " .. a.mood) or "") },
                 { role = "user", content = { type = "resource", uri = "notes://" .. a.day, mime_type = "text/plain",
                   text = notes[a.day] or "" } } }
      end,
      complete = { day = { "monday", "tuesday", "wednesday" }, mood = function() return { 42 } end } },
    { name = "oops", description = "A prompt that fails.", get = function() error("prompt exploded") end },
  },
}
