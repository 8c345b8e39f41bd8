-- expect: error: stack overflow
local function g(s) return (s:gsub(".", g)) end
return g("abc")
