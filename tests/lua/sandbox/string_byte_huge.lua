-- expect: error: string slice too long
return string.byte(string.rep("x", 2000000), 1, -1)
