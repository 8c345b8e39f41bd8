-- expect: error: attempt to call a nil value (field 'dump')
local bc = string.dump(function() return 1 end)
return load(bc, "x", "b")()
