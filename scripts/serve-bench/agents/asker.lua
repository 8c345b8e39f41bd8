-- scripts/serve-bench/agents/asker.lua: a run that waits for a person
-- (memory per waiting run).
return function(input)
  return { answer = luact.ask("your name?") }
end
