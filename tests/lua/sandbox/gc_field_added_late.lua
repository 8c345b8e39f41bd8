-- expect: ok: "done"
-- __gc added after setmetatable never marks the object for finalization
local mt = {}
local t = setmetatable({}, mt)
mt.__gc = function() while true do end end
t = nil
for i = 1, 20000 do local _ = { i } end
return "done"
