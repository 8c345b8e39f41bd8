-- expect: error: stack overflow
-- opts: mem_limit=200000000
-- with room to spare, Lua's own stack limit (LUAI_MAXSTACK) ends it
local function f(n) return f(n + 1) + 1 end
return f(1)
