-- examples/evals/shopbot/window_passed.lua: converted from tests/shopbot/window_passed.json and its
-- checks in tests/examples/check_shopbot.c. Delivered 45 days ago: the 30-day window has passed; nothing is created.
local C = require "shopbot_checks"
local count, nothing_created = C.count, C.nothing_created
return {
  description = "Delivered 45 days ago: the 30-day window has passed; nothing is created.",
  turns = {
    "I need to return my jeans",
    "A1002",
    "the black jeans",
    "yes",
    "Oh well. Thanks anyway.",
  },
  -- the model's replies, in order: {tool, arguments} or {"text", reply}
  model = {
    { "ask_user", { question = "What's your order number?" } },
    { "lookup_order", { order_number = "A1002" } },
    { "goto_select_items", {} },
    { "ask_user", { question = "Order A1002 has Straight jeans, black. Return those?" } },
    { "select_items", { item_ids = { 21 } } },
    { "ask_user", { question = "Straight jeans, black, W34 L32: correct?" } },
    { "goto_label", {} },
    { "ask_user", { question = "I'm sorry: those jeans were delivered 45 days ago and our return window is 30 days, so I can't create a return for them." } },
    { "finish", { summary = "Sorry I couldn't help with this one. Have a good day!" } },
  },
  expect = {
    status = "finished",
    state = { state = "select_items" },
    model_saw = {
      "delivered on 2025-05-02, 45 days ago; the return window is 30 days",
    },
    check = function(st)
      if not (nothing_created(st)) then return false, "failed: nothing_created(st)" end
      if not (count(st, "goto_label", true, "the return window is 30 days") == 1) then return false, "failed: count(st, \"goto_label\", true, \"the return window is 30 days\") == 1" end
      return true
    end,
  },
}
