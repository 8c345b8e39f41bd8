-- expect: ok: 3
-- a text chunk with mode "b" would normally be refused; the sandbox forces
-- "t", so it loads, and in the sandbox env
local f = assert(load("return 1 + 2", "x", "b"))
return f()
