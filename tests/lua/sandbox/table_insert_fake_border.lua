-- expect: error: table too long
-- a constructor puts 62 keys 1, 2, 4, ... 2^61 in the hash part, so the
-- border #t finds is 2^61; insert/remove would shift 2^61 slots in C
local parts = {}
for k = 0, 61 do parts[#parts + 1] = ("[%d]=%d"):format(1 << k, k) end
local t = load("return {" .. table.concat(parts, ",") .. "}")()
assert(#t == 1 << 61, "border is " .. #t)
table.insert(t, 1, "x")
