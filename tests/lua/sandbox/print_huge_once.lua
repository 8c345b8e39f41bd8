-- expect: output
print(string.rep("y", 100000))
