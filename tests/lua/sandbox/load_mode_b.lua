-- expect: error: attempt to load a binary chunk
-- asking for binary mode explicitly does not help: mode is forced to "t"
local bc = "\27Lua\x54\x00\x19\x93\r\n\x1a\n\x04\x08\x08" .. string.rep("\0", 40)
local f, err = load(bc, "evil", "b")
assert(f, err)
return f()
