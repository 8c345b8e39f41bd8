-- expect: instructions
-- coroutine.wrap closes a coroutine that died by error: not after a stop
local f = coroutine.wrap(function()
  local x <close> = setmetatable({}, { __close = function() while true do end end })
  while true do end
end)
pcall(f)
while true do end
