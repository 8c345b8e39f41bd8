-- expect: instructions
-- the hook is per thread: the coroutine must have inherited it
coroutine.wrap(function() while true do end end)()
