-- expect: ok: 5050
local s = 0
for i = 1, 100 do s = s + i end
return s
