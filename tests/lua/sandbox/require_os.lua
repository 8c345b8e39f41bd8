-- expect: error: 'require' is not available
local os = require("os")
return os.getenv("HOME")
