-- tests/mcp/conformance_client.lua: luact's MCP client as the client under
-- test of the official conformance suite (@modelcontextprotocol/conformance).
-- The suite runs `<command> URL` with MCP_CONFORMANCE_SCENARIO set; this
-- does, through luact.mcp.connect, what that scenario's server expects.
--
--   luact run tests/mcp/conformance_client.lua URL
local url = assert(arg[1], "usage: conformance_client.lua URL")
local scenario = os.getenv("MCP_CONFORMANCE_SCENARIO") or ""

local function connect(extra)
  local spec = { url = url, name = "conformance", timeout = 20, connect_timeout = 20 }
  for k, v in pairs(extra or {}) do spec[k] = v end
  return assert(luact.mcp.connect(spec))
end

local function call(s, name, args)
  local r, err = s:call(name, args or {})
  assert(r, err)
  assert(not r.isError, name .. " returned an error result")
  return r
end

if scenario == "initialize" then
  -- the handshake and a listing
  local s = connect()
  assert(#s.tools >= 0)
  s:close()
elseif scenario == "tools_call" then
  local s = connect()
  local r = call(s, "add_numbers", { a = 5, b = 3 })
  assert(r.content[1].text:find("8"), r.content[1].text)
  s:close()
elseif scenario == "elicitation-sep1034-client-defaults" then
  -- accept without filling anything: the client applies the schema's defaults
  local s = connect { on_elicit = function() return {} end }
  call(s, "test_client_elicitation_defaults")
  s:close()
elseif scenario == "sse-retry" then
  local s = connect()
  local r = call(s, "test_reconnection")
  assert(r.content[1].text:find("completed"), r.content[1].text)
  s:close()
else
  -- auth/* and anything newer: a plain connect and listing, so the
  -- scenario's checks say what is missing
  local s = connect()
  for _, t in ipairs(s.tools) do s:call(t.name, {}) end
  s:close()
end
print("conformance client: " .. scenario .. " done")
