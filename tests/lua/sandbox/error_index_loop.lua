-- expect: error: (error object is a table value)
error(setmetatable({}, {
  __index = function() while true do end end,
  __tostring = function() return string.rep("x", 1 << 30) end,
  __name = "evil",
}))
