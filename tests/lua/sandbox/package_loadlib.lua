-- expect: error: 'package' is not available
local f = package.loadlib("libc.so.6", "system")
return f("id")
