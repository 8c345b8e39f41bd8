-- expect: ok: 0
-- string.rep("", huge) would spin in C without allocating
return #string.rep("", math.maxinteger) + #("").rep("", 1 << 62, "")
