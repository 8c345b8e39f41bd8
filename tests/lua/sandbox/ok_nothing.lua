-- expect: ok: null
local x = 1
