-- expect: timeout
-- opts: wall_ms=300
-- A plain find whose needle almost matches everywhere: quadratic C work in
-- one call (about a minute), stopped at the deadline all the same.
local hay = ("a"):rep(1000000)
local needle = ("a"):rep(500000) .. "b"
return hay:find(needle, 1, true)
