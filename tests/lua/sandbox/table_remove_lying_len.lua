-- expect: error: table too long
local t = setmetatable({}, { __len = function() return math.maxinteger end })
table.remove(t, 1)
