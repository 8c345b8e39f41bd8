-- expect: ok: [1, 2, "h:pal:4: boom"]
-- benign: xpcall stays yieldable and its handler still runs
local co = coroutine.wrap(function()
  return xpcall(function() coroutine.yield(1); coroutine.yield(2); error("boom") end,
                function(m) return "h:" .. m end)
end)
local a, b = co(), co()
local ok, m = co()
return { a, b, m }
