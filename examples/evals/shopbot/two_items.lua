-- examples/evals/shopbot/two_items.lua: converted from tests/shopbot/two_items.json and its
-- checks in tests/examples/check_shopbot.c. Two items; leaving too early is refused twice (items first, then confirmation).
local C = require "shopbot_checks"
local count, label_sent = C.count, C.label_sent
return {
  description = "Two items; leaving too early is refused twice (items first, then confirmation).",
  turns = {
    "I want to return some jeans",
    "A1001",
    "The jeans and the T-shirt",
    "Yes, both",
    "alice@example.com",
  },
  -- the model's replies, in order: {tool, arguments} or {"text", reply}
  model = {
    { "ask_user", { question = "Happy to help. What's the order number?" } },
    { "lookup_order", { order_number = "a1001" } },
    { "goto_select_items", {} },
    { "ask_user", { question = "I see Slim jeans, an organic T-shirt and a leather belt. Which items?" } },
    { "goto_label", { reason = "skipping ahead" } },
    { "select_items", { item_ids = { 11, 12 } } },
    { "goto_label", { reason = "not confirmed yet" } },
    { "ask_user", { question = "So that's the Slim jeans and the organic T-shirt (the belt stays with you). Correct?" } },
    { "goto_label", {} },
    { "create_label", {} },
    { "goto_email", {} },
    { "ask_user", { question = "What's the email address on the order?" } },
    { "send_label_email", { email = "Alice@Example.com" } },
    { "finish", { summary = "Your label for the jeans and the T-shirt is in your inbox." } },
  },
  expect = {
    status = "finished",
    state = { state = "email", returns = "A1001 [11,12] emailed alice@example.com LBL-000001", check_failures = 2 },
    model_saw = {
      "Not allowed yet (goto_label): Confirm the selected items",
    },
    check = function(st)
      if not (label_sent(st, "\"item_id\":12")) then return false, "failed: label_sent(st, \"\\\"item_id\\\":12\")" end
      if not (count(st, "goto_label", true, "Record the items with select_items first") == 1) then return false, "failed: count(st, \"goto_label\", true, \"Record the items with select_items first\") == 1" end
      if not (count(st, "goto_label", true, "Confirm the selected items with the customer") == 1) then return false, "failed: count(st, \"goto_label\", true, \"Confirm the selected items with the customer\") == 1" end
      return true
    end,
  },
}
