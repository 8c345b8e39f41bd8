-- expect: error: __gc metamethods are not allowed
local keep = {}
setmetatable({}, { __gc = function(o) keep[#keep + 1] = string.rep("x", 1e6) end })
