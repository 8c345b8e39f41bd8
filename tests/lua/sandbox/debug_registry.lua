-- expect: error: 'debug' is not available
local reg = debug.getregistry()
return #reg
