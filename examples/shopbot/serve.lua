-- examples/shopbot/serve.lua: ShopBot as an agent of `luact serve examples/`
-- (docs/serve.md). The customer talks through the API: the run's input is
-- the first message ({"message": "..."}); each question ShopBot asks puts
-- the run in the interrupted state, and the customer's answer is the
-- resume command. A run survives a daemon restart between two answers.
--
-- Environment of the daemon: SHOPBOT_SHIPPING_URL (the shipping API,
-- required), SHOPBOT_DATA (default examples/shopbot/data), LUACT_MODEL,
-- SHOPBOT_TODAY, and the provider's key and endpoint.
local here = arg[0]:match("^(.*)/[^/]*$") or "."

return {
  name = "shopbot",
  description = "ShopBot: returns for Shop Example, one step at a time, asking the customer",
  input_schema = {
    type = "object",
    properties = { message = { type = "string", minLength = 1 } },
    required = { "message" },
  },
  output_schema = {
    type = "object",
    properties = { status = { type = "string" }, state = { type = "string" },
                   reason = { type = "string" } },
  },
  run = function(input, ctx)
    local shipping = os.getenv("SHOPBOT_SHIPPING_URL")
    if not shipping then return { status = "failed", reason = "SHOPBOT_SHIPPING_URL is not set" } end
    local data_dir = os.getenv("SHOPBOT_DATA") or (here .. "/data")
    os.execute("mkdir -p '" .. data_dir:gsub("'", "'\\''") .. "'")
    local shopbot = dofile(here .. "/shopbot.lua")
    local bot = shopbot.new { data_dir = data_dir, shipping_url = shipping }
    local r = bot:run {
      message = input.message,
      input = function(question) return luact.ask(question) end,
    }
    bot:close()
    return { status = r.status, state = r.state, reason = r.reason }
  end,
}
