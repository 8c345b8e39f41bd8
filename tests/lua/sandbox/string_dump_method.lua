-- expect: error: attempt to call a nil value (method 'dump')
-- reach dump through the string metatable's __index instead of the global
local s = "x"
return s:dump()
