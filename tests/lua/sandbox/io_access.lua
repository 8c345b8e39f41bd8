-- expect: error: 'io' is not available
io.write("pwned\n")
