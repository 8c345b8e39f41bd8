-- scripts/serve-bench/idle: a run that yields input.n times, no I/O: one
-- pass of its worker's loop for each (a task-level coroutine.yield).
return function(input, ctx)
  for i = 1, input.n do coroutine.yield() end
  return {ticks = input.n}
end
