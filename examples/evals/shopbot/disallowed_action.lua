-- examples/evals/shopbot/disallowed_action.lua: converted from tests/shopbot/disallowed_action.json and its
-- checks in tests/examples/check_shopbot.c. create_label in step identify is refused and never reaches the shipping service.
local C = require "shopbot_checks"
local count, label_sent = C.count, C.label_sent
return {
  description = "create_label in step identify is refused and never reaches the shipping service.",
  turns = {
    "return my jeans, order A1001",
    "the jeans",
    "yes",
    "alice@example.com",
  },
  -- the model's replies, in order: {tool, arguments} or {"text", reply}
  model = {
    { "create_label", {} },
    { "lookup_order", { order_number = "A1001" } },
    { "goto_select_items", {} },
    { "ask_user", { question = "Jeans, T-shirt or belt?" } },
    { "select_items", { item_ids = { 11 } } },
    { "ask_user", { question = "Only the jeans?" } },
    { "goto_label", {} },
    { "create_label", {} },
    { "goto_email", {} },
    { "ask_user", { question = "Email on the order?" } },
    { "send_label_email", { email = "alice@example.com" } },
    { "finish", { summary = "Label sent." } },
  },
  expect = {
    status = "finished",
    state = { state = "email", returns = "A1001 [11] emailed alice@example.com LBL-000001", refused = 1, requests = 1 },
    model_saw = {
      "Refused: 'create_label' is not an allowed action in step identify. Allowed: lookup_order, ask_user, goto_select_items, finish.",
    },
    check = function(st)
      if not (label_sent(st, "\"item_id\":11")) then return false, "failed: label_sent(st, \"\\\"item_id\\\":11\")" end
      if not (count(st, "create_label", true, "is not an allowed action in step identify") == 1) then return false, "failed: count(st, \"create_label\", true, \"is not an allowed action in step identify\") == 1" end
      return true
    end,
  },
}
