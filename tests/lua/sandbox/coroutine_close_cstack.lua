-- expect: died: the sandbox process died
-- opts: mem_limit=67108864
-- Lua 5.4.4 does not count the C stack of coroutine.close running a
-- __close handler that closes the previous coroutine: deep enough, this
-- overflows the C stack and crashes the state. In the child process that
-- is a dead child ("died"), never a crash of the host or "out of memory".
local coro = false
for i = 1, 30000 do
  local previous = coro
  coro = coroutine.create(function()
    local cc <close> = setmetatable({}, {__close = function()
      if previous then coroutine.close(previous) end
    end})
    coroutine.yield()
  end)
  coroutine.resume(coro)
end
return coroutine.close(coro)
