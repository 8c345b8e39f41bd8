-- expect: output: output limit exceeded
while true do print(string.rep("x", 1000)) end
