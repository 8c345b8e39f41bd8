-- examples/evals/shopbot/final_sale.lua: converted from tests/shopbot/final_sale.json and its
-- checks in tests/examples/check_shopbot.c. A final-sale item cannot be returned; the other is offered.
local C = require "shopbot_checks"
local nothing_created = C.nothing_created
return {
  description = "A final-sale item cannot be returned; the other is offered.",
  turns = {
    "Return my jeans",
    "A1003",
    "the wide jeans",
    "yes",
    "No thanks, I only wanted to return the jeans.",
  },
  -- the model's replies, in order: {tool, arguments} or {"text", reply}
  model = {
    { "ask_user", { question = "Sure, what's the order number?" } },
    { "lookup_order", { order_number = "A1003" } },
    { "goto_select_items", {} },
    { "ask_user", { question = "A1003 has Wide jeans (clearance) and a wool sweater. Which?" } },
    { "select_items", { item_ids = { 31 } } },
    { "ask_user", { question = "The wide jeans, light wash: right?" } },
    { "goto_label", {} },
    { "ask_user", { question = "Those jeans were a final-sale clearance item, so they can't be returned. The wool sweater can be. Would you like to return it instead?" } },
    { "finish", { summary = "Understood. Nothing was returned; have a nice day." } },
  },
  expect = {
    status = "finished",
    state = { state = "select_items" },
    model_saw = {
      "was a final-sale item; final-sale items cannot be returned",
      "Wool sweater, grey",
    },
    check = function(st)
      if not (nothing_created(st)) then return false, "failed: nothing_created(st)" end
      return true
    end,
  },
}
