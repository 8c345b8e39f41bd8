-- expect: bad_result: nesting deeper than
local t = {}
t.self = t
return t
