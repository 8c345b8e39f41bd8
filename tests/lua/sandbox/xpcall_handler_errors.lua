-- expect: error
local function h(e) error({}) end
local ok, e = xpcall(function() error("first") end, h)
error(e)
