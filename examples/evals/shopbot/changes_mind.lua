-- examples/evals/shopbot/changes_mind.lua: converted from tests/shopbot/changes_mind.json and its
-- checks in tests/examples/check_shopbot.c. The customer changes their mind: the bot finishes, nothing is created.
local C = require "shopbot_checks"
local count, nothing_created = C.count, C.nothing_created
return {
  description = "The customer changes their mind: the bot finishes, nothing is created.",
  turns = {
    "I want to return my jeans",
    "A1001",
    "the jeans",
    "Actually, never mind. I'll keep them.",
  },
  -- the model's replies, in order: {tool, arguments} or {"text", reply}
  model = {
    { "ask_user", { question = "What's the order number?" } },
    { "lookup_order", { order_number = "A1001" } },
    { "goto_select_items", {} },
    { "ask_user", { question = "Which items: jeans, T-shirt or belt?" } },
    { "select_items", { item_ids = { 11 } } },
    { "ask_user", { question = "The Slim jeans, correct?" } },
    { "finish", { summary = "No problem, nothing has been returned. Enjoy the jeans!" } },
  },
  expect = {
    status = "finished",
    state = { state = "select_items" },
    check = function(st)
      if not (nothing_created(st)) then return false, "failed: nothing_created(st)" end
      if not (count(st, "finish", false) == 1) then return false, "failed: count(st, \"finish\", false) == 1" end
      return true
    end,
  },
}
