-- expect: timeout
-- opts: wall_ms=300 instr_limit=1000000000000
-- few instructions, lots of C work per instruction: only the clock stops it
local t = {}
for i = 1, 300000 do t[i] = i end
while true do table.insert(t, 1, 0); table.remove(t, 1) end
