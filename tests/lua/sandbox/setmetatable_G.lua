-- expect: error: cannot change a protected metatable
setmetatable(_G, nil)
x = 1
