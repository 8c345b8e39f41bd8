-- examples/evals/shopbot/disallowed_action.lua: converted from tests/shopbot/disallowed_action.json and its
-- checks in tests/examples/check_shopbot.c. create_label in step identify is refused and never reaches the shipping service.
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
