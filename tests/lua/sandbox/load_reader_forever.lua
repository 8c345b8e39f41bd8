-- expect: instructions
-- a reader function that never ends the chunk
local f = load(function() return "--comment\n" end)
return f
