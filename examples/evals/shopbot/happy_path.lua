-- examples/evals/shopbot/happy_path.lua: converted from tests/shopbot/happy_path.json and its
-- checks in tests/examples/check_shopbot.c. The customer returns the jeans: order, items, label, email.
local C = require "shopbot_checks"
local label_sent = C.label_sent
return {
  description = "The customer returns the jeans: order, items, label, email.",
  turns = {
    "Hi, I'd like to return the jeans I bought.",
    "It's A1001",
    "Just the jeans, please.",
    "Yes, only the jeans.",
    "alice@example.com",
  },
  -- the model's replies, in order: {tool, arguments} or {"text", reply}
  model = {
    { "ask_user", { question = "Sure! What's your order number?" } },
    { "lookup_order", { order_number = "A1001" } },
    { "goto_select_items", { reason = "order A1001 found" } },
    { "ask_user", { question = "Order A1001 has Slim jeans (W32 L32), an organic T-shirt and a leather belt. Which would you like to return?" } },
    { "select_items", { item_ids = { 11 } } },
    { "ask_user", { question = "To confirm: the Slim jeans, indigo (W32 L32). The T-shirt and the belt can be returned too if you like. Only the jeans?" } },
    { "goto_label", { reason = "customer confirmed" } },
    { "create_label", {} },
    { "goto_email", {} },
    { "ask_user", { question = "Your label is ready. Which email address is on your order (a****@example.com)?" } },
    { "send_label_email", { email = "alice@example.com" } },
    { "finish", { summary = "Done! Your return label is in your inbox. Drop the parcel at any Parcelo point within 14 days; the refund follows when it arrives." } },
  },
  expect = {
    status = "finished",
    state = { state = "email", returns = "A1001 [11] emailed alice@example.com LBL-000001", requests = 1, refused = 0, check_failures = 0, request_log = "t-8-create_label 201 LBL-000001" },
    model_saw = {
      "Actions allowed in this step: lookup_order, ask_user, goto_select_items, finish.",
      "Actions allowed in this step: create_label, goto_email, finish.",
    },
    tool_calls = { { name = "lookup_order", args = { order_number = "A1001" } }, { name = "select_items", args = { item_ids = { 11 } } }, { name = "create_label" }, { name = "send_label_email", args = { email = "alice@example.com" } } },
    check = function(st)
      if not (label_sent(st, "\"item_id\":11")) then return false, "failed: label_sent(st, \"\\\"item_id\\\":11\")" end
      return true
    end,
  },
}
