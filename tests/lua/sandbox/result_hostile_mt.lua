-- expect: ok: {"a": 1}
-- the converter must not run any metamethod of the returned value
local loop = function() while true do end end
return setmetatable({ a = 1 }, {
  __index = loop, __pairs = loop, __len = loop, __tostring = loop,
  __jsontype = nil,
})
