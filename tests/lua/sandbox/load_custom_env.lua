-- expect: error: 'os' is not available
-- the env argument is ignored: the chunk still sees the sandbox globals
local f = load("return os", "x", "t", { os = "fake os" })
return f()
