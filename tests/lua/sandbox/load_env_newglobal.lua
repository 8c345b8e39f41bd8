-- expect: error: cannot create global 'leak'
local env = setmetatable({}, { __newindex = rawset })
load("leak = 1", "x", "t", env)()
return leak
