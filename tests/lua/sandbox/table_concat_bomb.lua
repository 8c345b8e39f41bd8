-- expect: memory
local s = string.rep("x", 100000)
local t = {}
for i = 1, 1000 do t[i] = s end
return #table.concat(t, s)
