-- expect: error: attempt to index a boolean value
local mt = getmetatable(_G)
mt.__newindex = nil
