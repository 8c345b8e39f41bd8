-- expect: error: attempt to load a binary chunk
-- a hand-made Lua 5.4 header: ESC "Lua" 0x54 0x00 LUAC_DATA, sizes, LUAC_INT/NUM
local hdr = "\27Lua\x54\x00\x19\x93\r\n\x1a\n\x04\x08\x08" ..
  string.pack("<j", 0x5678) .. string.pack("<n", 370.5)
local bc = hdr .. "\x01" .. string.rep("\255", 64)
local f, err = load(bc)
assert(f, err)
return f()
