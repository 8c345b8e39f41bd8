-- expect: error: rawset on the global table is not allowed
rawset(_ENV, "os", { execute = print })
