-- examples/mcp_serve/notes.lua: a small notes server for `luact mcp serve`,
-- showing what an agents-folder file can declare besides tools:
-- resources, a resource template with completions, a prompt, and tools
-- that return rich content, log to the client and ask the client's model.
--
--   luact mcp serve examples/mcp_serve                       (stdio)
--   LUACT_MCP_TOKEN=$(openssl rand -hex 16) \
--     luact mcp serve --http 8808 examples/mcp_serve          (HTTP)
--
-- Notes live in memory while the server runs. docs/mcp.md explains each field.
local mcp = luact.mcp
local notes = { welcome = "Notes are kept while the server runs.", lua = "Tables are the only structure." }

local function names(prefix)
  local out = {}
  for n in pairs(notes) do
    if n:sub(1, #prefix) == prefix then out[#out + 1] = n end
  end
  table.sort(out)
  return out
end

return {
  luact.tool { name = "add_note", description = "Adds or replaces a note.",
    params = { type = "object", properties = { name = { type = "string" },
      text = { type = "string" } }, required = { "name", "text" } },
    fn = function(a, ctx)
      if not a.name:match("^[%w_-]+$") then return nil, "a note name is letters, digits, _ and -" end
      notes[a.name] = a.text
      ctx.log("info", { added = a.name }, "notes")
      -- clients subscribed to the note (or the index) hear of the change
      mcp.resource_updated("notes://" .. a.name)
      mcp.resource_updated("notes://index")
      return mcp.content { "saved " .. a.name, { type = "resource_link", uri = "notes://" .. a.name,
        name = a.name, mime_type = "text/plain" } }
    end },
  luact.tool { name = "title_for", description = "Asks the client's model for a note's title.",
    params = { type = "object", properties = { name = { type = "string" } }, required = { "name" } },
    fn = function(a, ctx)
      local text = notes[a.name]
      if not text then return nil, "no note " .. a.name end
      local r, err, code = ctx.sample { system = "Answer with a title of at most five words.",
        messages = { { role = "user", content = text } }, max_tokens = 20 }
      if not r then
        -- a client without sampling: say so rather than guess
        return "no title (" .. tostring(code) .. ": " .. tostring(err) .. ")"
      end
      return r.text or "no title (the model answered without text)"
    end },

  resources = {
    { uri = "notes://index", name = "index", description = "The names of all notes.", mime_type = "text/plain",
      read = function() return table.concat(names(""), "\n") end },
  },
  templates = {
    { uri_template = "notes://{name}", name = "note", description = "One note by name.", mime_type = "text/plain",
      read = function(_, v)
        local t = notes[v.name]
        if not t then return nil, "no note " .. v.name end
        return t
      end,
      complete = { name = names } },
  },
  prompts = {
    { name = "summarise", description = "Asks for a summary of a note.",
      arguments = { { name = "name", description = "The note", required = true },
                    { name = "style", description = "brief or detailed" } },
      get = function(a)
        local t = notes[a.name]
        if not t then return nil, "no note " .. a.name end
        return { { role = "user", content = { type = "resource", uri = "notes://" .. a.name,
                   mime_type = "text/plain", text = t } },
                 { role = "user", content = "Summarise the note above" ..
                   (a.style and (", " .. a.style) or "") .. "." } }
      end,
      complete = { name = names, style = { "brief", "detailed" } } },
  },
}
