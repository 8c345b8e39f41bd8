-- expect: error: table too long
local t = setmetatable({}, { __len = function() return math.maxinteger end })
table.insert(t, 1, "x")
