-- examples/evals/shopbot/wrong_order.lua: converted from tests/shopbot/wrong_order.json and its
-- checks in tests/examples/check_shopbot.c. A wrong order number first, then the right one.
-- How many actions named `action` (refused or not; nil: either) whose
-- transcript entry contains needle.
local function count(st, action, refused, needle)
  local n = 0
  for _, e in ipairs(st.actions or {}) do
    if e.action == action and (refused == nil or e.refused == refused)
      and (not needle or e.text:find(needle, 1, true)) then n = n + 1 end
  end
  return n
end
-- One label, asked for with the run's key, and one RFC 5322 message.
local function label_sent(st, item)
  if st.labels ~= 1 or st.outbox_new ~= 1 or st.outbox_tmp ~= 0 or st.null_keys ~= 0 then return false end
  if not (st.label_request:find('"order_number":"A1001"', 1, true) and st.label_request:find(item, 1, true)) then return false end
  local m = st.message or ""
  for _, h in ipairs { "\r\nFrom: Shop Example Returns <returns@shop.example>\r\n",
      "\r\nTo: \"Alice Moreau\" <alice@example.com>\r\n", "\r\nSubject: Your return label for order A1001\r\n",
      "\r\nMessage-ID: <t-", "@shop.example>\r\n", "\r\nMIME-Version: 1.0\r\n",
      "\r\nContent-Type: multipart/mixed; boundary=", "\r\n\r\n",
      "filename=\"return-label-LBL-000001.txt\"", "UEFSQ0VMTyBSRVRVUk4gTEFCRUwgTEJMLTAwMDAwMQpUcmFja2luZzogUFg0NzExMDAwMDAx" } do
    if not m:find(h, 1, true) then return false end
  end
  return m:sub(1, 6) == "Date: " and not m:find("[^\r]\n")
end
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
