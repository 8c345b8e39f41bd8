-- expect: ok: [false, "pal:6: inner", "closed"]
-- benign: wrap still closes a coroutine that failed normally
local closed
local f = coroutine.wrap(function()
  local x <close> = setmetatable({}, { __close = function() closed = "closed" end })
  error("inner")
end)
local ok, e = pcall(f)
return { ok, e, closed }
