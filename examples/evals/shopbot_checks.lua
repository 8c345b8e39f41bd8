-- examples/evals/shopbot_checks.lua: what ShopBot's conversations
-- (shopbot/*.lua) check after a run, in the state that
-- shopbot.eval.lua reads back from the shop database, the shipping
-- service and the outbox. shopbot.eval.lua puts this folder on
-- package.path, so a scenario says `require "shopbot_checks"` wherever
-- its file is.
local M = {}

-- How many actions named `action` (refused or not; nil: either) whose
-- transcript entry contains needle.
function M.count(st, action, refused, needle)
  local n = 0
  for _, e in ipairs(st.actions or {}) do
    if e.action == action and (refused == nil or e.refused == refused)
      and (not needle or e.text:find(needle, 1, true)) then n = n + 1 end
  end
  return n
end

-- One label, asked for with the run's key, and one RFC 5322 message.
function M.label_sent(st, item)
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

-- Nothing made anywhere: no return, label, request or message.
function M.nothing_created(st)
  return st.returns == "" and st.labels == 0 and st.requests == 0 and st.outbox_new == 0 and st.outbox_tmp == 0
end

return M
