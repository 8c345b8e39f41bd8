-- examples/evals/shopbot/changes_mind.lua: converted from tests/shopbot/changes_mind.json and its
-- checks in tests/examples/check_shopbot.c. The customer changes their mind: the bot finishes, nothing is created.
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
-- Nothing made anywhere: no return, label, request or message.
local function nothing_created(st)
  return st.returns == "" and st.labels == 0 and st.requests == 0 and st.outbox_new == 0 and st.outbox_tmp == 0
end
return {
  description = "The customer changes their mind: the bot finishes, nothing is created.",
  turns = {
    "I want to return my jeans",
    "A1001",
    "the jeans",
    "Actually, never mind. I'll keep them.",
  },
  -- the model's replies, in order: {tool, arguments} or {"text", reply}
  model = {
    { "ask_user", { question = "What's the order number?" } },
    { "lookup_order", { order_number = "A1001" } },
    { "goto_select_items", {} },
    { "ask_user", { question = "Which items: jeans, T-shirt or belt?" } },
    { "select_items", { item_ids = { 11 } } },
    { "ask_user", { question = "The Slim jeans, correct?" } },
    { "finish", { summary = "No problem, nothing has been returned. Enjoy the jeans!" } },
  },
  expect = {
    status = "finished",
    state = { state = "select_items" },
    check = function(st)
      if not (nothing_created(st)) then return false, "failed: nothing_created(st)" end
      if not (count(st, "finish", false) == 1) then return false, "failed: count(st, \"finish\", false) == 1" end
      return true
    end,
  },
}
