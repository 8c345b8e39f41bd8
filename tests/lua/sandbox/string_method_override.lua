-- expect: ok: "pwn"
-- allowed, but only inside this run's own state (see check_sandbox fresh_state)
string.rep = function() return "pwn" end
return ("x"):rep(3)
