-- expect: error: eeeeeeee
error(string.rep("e", 1000000))
