-- expect: timeout
-- opts: wall_ms=200 instr_limit=1000000000000
while true do pcall(function() while true do end end) end
