-- expect: timeout
-- opts: wall_ms=300
-- One call to string.find that backtracks for minutes inside C, where no
-- hook runs: only killing the sandbox process stops it in time.
return ("a"):rep(3000):find(".-.-.-b")
