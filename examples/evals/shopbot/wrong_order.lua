-- examples/evals/shopbot/wrong_order.lua: converted from tests/shopbot/wrong_order.json and its
-- checks in tests/examples/check_shopbot.c. A wrong order number first, then the right one.
local C = require "shopbot_checks"
local count, label_sent = C.count, C.label_sent
return {
  description = "A wrong order number first, then the right one.",
  turns = {
    "return jeans please",
    "A1009",
    "Oops, sorry: A1001",
    "The jeans",
    "yes",
    "alice@example.com",
  },
  -- the model's replies, in order: {tool, arguments} or {"text", reply}
  model = {
    { "ask_user", { question = "What's your order number?" } },
    { "lookup_order", { order_number = "A1009" } },
    { "ask_user", { question = "I couldn't find order A1009. Could you check the number?" } },
    { "lookup_order", { order_number = "A1001" } },
    { "goto_select_items", {} },
    { "ask_user", { question = "Found it: jeans, T-shirt, belt. Which ones?" } },
    { "select_items", { item_ids = { 11 } } },
    { "ask_user", { question = "The Slim jeans then (T-shirt and belt stay)?" } },
    { "goto_label", {} },
    { "create_label", {} },
    { "goto_email", {} },
    { "ask_user", { question = "Please confirm the email on the order." } },
    { "send_label_email", { email = "alice@example.com" } },
    { "finish", { summary = "All set: the label is in your inbox." } },
  },
  expect = {
    status = "finished",
    state = { state = "email", returns = "A1001 [11] emailed alice@example.com LBL-000001" },
    model_saw = {
      "There is no order A1009",
    },
    check = function(st)
      if not (label_sent(st, "\"item_id\":11")) then return false, "failed: label_sent(st, \"\\\"item_id\\\":11\")" end
      if not (count(st, "lookup_order", false, "\"found\":false") == 1) then return false, "failed: count(st, \"lookup_order\", false, \"\\\"found\\\":false\") == 1" end
      return true
    end,
  },
}
