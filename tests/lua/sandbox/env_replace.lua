-- expect: ok: "os"
-- a private _ENV only changes this chunk's own lookups
local _ENV = setmetatable({}, { __index = function(_, k) return k end })
return os
