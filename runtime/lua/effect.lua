-- effect.lua: luact.effect(kind, name, request, class, fn [, opts]): runs fn
-- as one journaled effect (docs/journal.md). Recording: the intent is
-- written before fn runs and its results after, before the caller sees
-- them. Replaying: the recorded results come back and fn does not run,
-- unless the journal holds the intent without a result; then the class
-- decides: pure and idempotent run again (idempotent with the same key in
-- ctx.idempotency_key), at_most_once stops the run as "in doubt".
local luact, check_opts = ...

local begin = luact._effect_begin
luact._effect_begin = nil
local CLASSES = { pure = true, idempotent = true, at_most_once = true }

-- The effect itself, arguments already checked: fn(ctx, ...). With the
-- journal off (or none) there is no token: fn runs plainly, and the key in
-- ctx is derived only if fn reads it.
-- fn's outcome recorded: its values, or its error as recorded and raised.
-- (pcall's results as arguments, not a table packed per call.)
local function settle(tok, ok, ...)
  if not ok then
    local e = ...
    local m = tok:fail(e) -- the text as recorded
    error(type(e) == "string" and m or e, 0)
  end
  return tok:finish(...)
end

local function run(kind, name, request, class, schema, fn, ...)
  -- tok and whether it was replayed; or false and the ctx
  local tok <close>, x = begin(kind, name, request, class, schema)
  if not tok then return fn(x or {}, ...) end -- not journaled
  if x then return tok:results() end
  return settle(tok, pcall(fn, tok:ctx(), ...))
end
luact._effect_run = run -- for tool.lua, which takes it away

-- run for a fn that never reads its ctx (an MCP tool's, mcp.lua): fn gets
-- nil for it, journaled or not: begin makes no ctx table per call, and no
-- tok:ctx() (a table, its id string and metatable: ~2,200 instructions of
-- a journaled MCP call, callgrind).
local function run_noctx(kind, name, request, class, schema, fn, ...)
  local tok <close>, x = begin(kind, name, request, class, schema, true)
  if not tok then return fn(x, ...) end
  if x then return tok:results() end
  return settle(tok, pcall(fn, nil, ...))
end
luact._effect_run_noctx = run_noctx -- for tool.lua too

-- The end of an effect a C path began (l_mcp.c's journaled plain call,
-- when its answer needs Lua): tok came from C (lc_l_effect_adopt); fn's
-- outcome is recorded as run records it, and a raise closes tok.
local function adopted(tok, fn, ...)
  local t <close> = tok
  return settle(t, pcall(fn, ...))
end
luact.mcp._adopted = adopted -- for mcp.lua, which takes it away

--- fn(ctx) gets ctx = {idempotency_key =, effect_id =}. opts.schema: a
-- table whose content hash is recorded as the effect's tool-schema version
-- (a replay stops when it changed).
function luact.effect(kind, name, request, class, fn, opts)
  if type(kind) ~= "string" or kind == "" then error("luact.effect: 'kind' must be a non-empty string", 2) end
  if type(name) ~= "string" then error("luact.effect: 'name' must be a string", 2) end
  if not CLASSES[class] then error("luact.effect: class must be pure, idempotent or at_most_once", 2) end
  if type(fn) ~= "function" then error("luact.effect: 'fn' must be a function", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("luact.effect: 'opts' must be a table", 2) end
  local bad = opts and check_opts(opts, "luact.effect")
  if bad then error(bad, 2) end
  return run(kind, name, request, class, opts and opts.schema, fn)
end
