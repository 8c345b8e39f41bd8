-- expect: memory
return #string.rep("x", 1 << 30)
