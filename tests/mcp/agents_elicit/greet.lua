-- Served runs that ask their user (luact.ask, a workflow's ask_user): over
-- MCP the question goes to the client as elicitation/create when it
-- declared the capability (tests/mcp/check_mcp.c, elicit_* cases).
local function greet()
  local a, e, code = luact.ask("What is your name?")
  if not a then return "ask failed: " .. tostring(e) .. " (" .. tostring(code) .. ")" end
  return "Hello, " .. a .. "!"
end
return {
  { name = "greet", description = "Asks the user's name and greets them.",
    params = { type = "object", properties = {} }, run = greet },
  -- the same with a one-second budget: a client that never answers
  { name = "greet_soon", description = "Asks, and gives up after a second.",
    params = { type = "object", properties = {} }, timeout = 1, run = greet },
  -- the ask from a child task of the call (luact.spawn) finds the call too
  { name = "greet_child", description = "Asks from a child task.",
    params = { type = "object", properties = {} },
    run = function() return select(2, luact.wait(luact.spawn(greet))) end },
  -- two questions in one run (2026-07-28: two input_required rounds)
  { name = "greet_twice", description = "Asks two things.",
    params = { type = "object", properties = {} },
    run = function()
      local a = luact.ask("First name?")
      local b = luact.ask("Last name?")
      return "Hello, " .. tostring(a) .. " " .. tostring(b) .. "!"
    end },
  -- a secret is never asked in a form (the spec forbids it)
  { name = "secret", description = "Asks for a secret.",
    params = { type = "object", properties = {} },
    run = function()
      local a, e, code = luact.ask("Password?", { secret = true })
      return tostring(a) .. ": " .. tostring(e) .. " (" .. tostring(code) .. ")"
    end },
  luact.tool { name = "form", description = "Asks with a schema (ctx.elicit).", effect = "pure",
    params = { type = "object", properties = {} },
    fn = function(_, ctx)
      local r, e, code = ctx.elicit("Your details?", { type = "object",
        properties = { age = { type = "integer", default = 30 } } })
      if not r then return nil, e .. " (" .. code .. ")" end
      return { action = r.action, content = r.content or {} }
    end },
  luact.tool { name = "echo", description = "Returns its text.", effect = "pure",
    params = { type = "object", properties = { text = { type = "string" } }, required = { "text" } },
    fn = function(a) return a.text end },
}
