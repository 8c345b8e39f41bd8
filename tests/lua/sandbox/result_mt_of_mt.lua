-- expect: ok: {}
-- a metatable whose own __index loops: looking up __jsontype must be raw
local mt = setmetatable({}, { __index = function() while true do end end })
return setmetatable({}, mt)
