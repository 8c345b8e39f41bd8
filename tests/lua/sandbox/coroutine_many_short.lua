-- expect: instructions
-- each coroutine dies before the count hook fires on it
while true do
  coroutine.wrap(function() local a = 1 end)()
  coroutine.resume(coroutine.create(function() end))
end
