-- examples/evals/shopbot/email_mismatch.lua: converted from tests/shopbot/email_mismatch.json and its
-- checks in tests/examples/check_shopbot.c. The label goes only to the address on the order, after confirmation.
local C = require "shopbot_checks"
local count, label_sent = C.count, C.label_sent
return {
  description = "The label goes only to the address on the order, after confirmation.",
  turns = {
    "hi, return jeans",
    "A1001",
    "jeans",
    "yes",
    "send it to alice.work@gmail.com please",
    "ok then, alice@example.com",
  },
  -- the model's replies, in order: {tool, arguments} or {"text", reply}
  model = {
    { "ask_user", { question = "Order number?" } },
    { "lookup_order", { order_number = "A1001" } },
    { "goto_select_items", {} },
    { "ask_user", { question = "Jeans, T-shirt, belt: which?" } },
    { "select_items", { item_ids = { 11 } } },
    { "ask_user", { question = "Only the Slim jeans?" } },
    { "goto_label", {} },
    { "create_label", {} },
    { "goto_email", {} },
    { "send_label_email", { email = "alice@example.com" } },
    { "ask_user", { question = "Where should I send the label? It goes to the address on your order." } },
    { "send_label_email", { email = "alice.work@gmail.com" } },
    { "ask_user", { question = "I can only send the label to the address on the order (a****@example.com). Is that address yours?" } },
    { "send_label_email", { email = "alice@example.com" } },
    { "finish", { summary = "Sent to the address on your order." } },
  },
  expect = {
    status = "finished",
    state = { state = "email", returns = "A1001 [11] emailed alice@example.com LBL-000001" },
    check = function(st)
      if not (label_sent(st, "\"item_id\":11")) then return false, "failed: label_sent(st, \"\\\"item_id\\\":11\")" end
      if not (count(st, "send_label_email", true, "confirm their email address first") == 1) then return false, "failed: count(st, \"send_label_email\", true, \"confirm their email address first\") == 1" end
      if not (count(st, "send_label_email", true, "is not the address on the order") == 1) then return false, "failed: count(st, \"send_label_email\", true, \"is not the address on the order\") == 1" end
      if not (count(st, "send_label_email", false) == 1) then return false, "failed: count(st, \"send_label_email\", false) == 1" end
      if not (not st.message:find("gmail", 1, true)) then return false, "failed: not st.message:find(\"gmail\", 1, true)" end
      return true
    end,
  },
}
