-- effect_ask.lua (check_effect.c cli_ask): two questions; the --input file
-- has one answer, so the second gets nil, "no input", "eof".
local a = luact.ask("name? ")
local b, msg, code = luact.ask("again? ")
print(a, b, msg, code)
