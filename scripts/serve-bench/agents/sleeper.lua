-- scripts/serve-bench/idle: a run that only waits (input.s seconds).
return function(input, ctx)
  luact.sleep(input.s)
  return {slept = input.s}
end
