-- expect: error: __gc metamethods are not allowed
-- an error object that would finalize (hook-free) while the host unwinds
error(setmetatable({}, { __gc = function() while true do end end }))
