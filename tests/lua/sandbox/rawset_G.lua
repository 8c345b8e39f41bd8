-- expect: error: rawset on the global table is not allowed
rawset(_G, "x", 1)
return x
