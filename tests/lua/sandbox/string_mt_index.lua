-- expect: error: attempt to index a boolean value
getmetatable("").__index = { len = function() return "pwned" end }
return ("abc"):len()
