-- tools_code.lua: luact.tools.code{...}: the PAL sandbox as a tool that a
-- model can call (from luact.react, say). The model sends {code, input?};
-- the program runs in a fresh capped sandbox exactly as luact.pal runs it
-- (its return value, else solution()), and the model gets back
-- {value=, output=} or an error it can act on: status, message and what
-- the program printed before it stopped.
local luact, check_opts = ...

local json = luact.json
local tools = luact.tools or {}
luact.tools = tools

local OUTPUT_SHOWN = 2000
local CAPS = { memory = true, instructions = true, time = true, output = true }

local DESCRIPTION = "Run a Lua 5.4 program in a sandbox and get its result. " ..
  "The value is what the program returns (or what its solution() returns, " ..
  "if it defines one); print output comes back too. Only plain Lua: the " ..
  "table, string, math and utf8 libraries; no io, os or require; new globals " ..
  "are refused (declare variables local). The optional input object is " ..
  "visible to the program as the global `input`."

local function ferr(field, msg)
  error(string.format("luact.tools.code: '%s' %s", field, msg), 3)
end

--- luact.tools.code{name="run_lua", description=, sandbox={memory=,
-- instructions=, time=, output=}, timeout=}: a luact.tool (pure) whose
-- params are {code: string, input?: object}.
function tools.code(spec)
  spec = spec or {}
  if type(spec) ~= "table" then error("luact.tools.code: expected a table {name=, sandbox=, ...}", 2) end
  local bad = check_opts(spec, "luact.tools.code")
    or (type(spec.sandbox) == "table" and check_opts(spec.sandbox, "luact.tools.code sandbox"))
  if bad then error(bad, 2) end
  local caps = {}
  if spec.sandbox ~= nil then
    if type(spec.sandbox) ~= "table" then ferr("sandbox", "must be a table {memory=, instructions=, time=, output=}") end
    for k, v in pairs(spec.sandbox) do
      if not CAPS[k] then ferr("sandbox", "has an unknown option '" .. tostring(k) .. "' (memory, instructions, time, output)") end
      if type(v) ~= "number" or not (v > 0) then ferr("sandbox", "." .. k .. " must be a positive number") end
      caps[k] = v
    end
  end
  local run = luact.pal.run
  return luact.tool{
    name = spec.name or "run_lua",
    description = spec.description or DESCRIPTION,
    params = {
      type = "object",
      properties = {
        code = { type = "string", description = "the Lua program" },
        input = { type = "object", description = "data for the program, visible as the global `input`" },
      },
      required = { "code" },
    },
    effect = "pure",
    timeout = spec.timeout,
    fn = function(args)
      local opts = { input = args.input, allow_nil = true }
      for k, v in pairs(caps) do opts[k] = v end
      local r, msg, code, details = run(args.code, opts)
      if r then
        return { value = r.value == nil and json.null or r.value, output = r.output }
      end
      local text = string.format("%s: %s", code, msg)
      local out = details and details.output or ""
      if out ~= "" then
        if #out > OUTPUT_SHOWN then
          local cut = OUTPUT_SHOWN -- on a UTF-8 boundary
          while cut > 0 and (out:byte(cut + 1) & 0xC0) == 0x80 do cut = cut - 1 end
          out = out:sub(1, cut) .. string.format("\n... (%d more bytes)", #details.output - cut)
        end
        text = text .. "\nOutput before it stopped:\n" .. out
      end
      return nil, text
    end,
  }
end
