-- expect: instructions
-- a coroutine killed by the stop still has a to-be-closed variable; closing
-- it would run __close with hooks off
local co = coroutine.create(function()
  local x <close> = setmetatable({}, { __close = function() while true do end end })
  while true do end
end)
coroutine.resume(co)
coroutine.close(co)
