-- expect: memory
-- catching the memory error does not keep the run alive
for i = 1, 100 do pcall(string.rep, "x", 1 << 30) end
return "survived"
