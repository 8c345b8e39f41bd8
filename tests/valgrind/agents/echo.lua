-- scripts/valgrind's daemon agent: a wait on the loop, a value back.
local luact = require 'luact'
return function(input)
  luact.sleep(0.01)
  return {echo = input.text, n = #input.text}
end
