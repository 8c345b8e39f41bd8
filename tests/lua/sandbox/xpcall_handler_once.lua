-- expect: instructions
-- the handler runs after a stop raised from inside the hook, where Lua has
-- switched hooks off: it must not get to run at all
xpcall(function() while true do end end, function() while true do end end)
