-- expect: memory
local cps = {}
for i = 1, 200 do cps[i] = 0x7FFFFFFF end
local s = utf8.char(table.unpack(cps))
while true do s = s .. utf8.char(table.unpack(cps)) .. s end
