-- examples/evals/shopbot.eval.lua: ShopBot's conversations as luact eval
-- scenarios. Each file in shopbot/ is one conversation: the customer's
-- lines, the model's replies (scripted: served by a private lc-mockllm),
-- and what must hold afterwards in the shop database, the shipping
-- service and the outbox. A new conversation is one file.
--
--   luact eval examples/evals/shopbot.eval.lua          (examples/evals/run-offline.sh)
--   luact eval --replay .luact-eval/<run> examples/evals/shopbot.eval.lua   (no network)
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local shopbot = dofile(HERE .. "/../shopbot/shopbot.lua")
-- The scenarios' shared checks (shopbot_checks.lua), wherever a scenario file is.
package.path = HERE .. "/?.lua;" .. package.path

local function shq(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- The shipping partner, one per conversation (its own database).
local function start_shipping(dir)
  local bin = os.getenv("SHOPBOT_SHIPPING_BIN") or "build/shopbot-shipping"
  local p = io.popen(string.format("%s --db %s --background --watch-pid $PPID", shq(bin), shq(dir .. "/shipping.db")))
  local line, pidline = p:read("l"), p:read("l")
  p:close()
  local addr = line and line:match("^listening on (%S+)")
  if not addr then error("cannot start " .. bin .. " (build it, or set SHOPBOT_SHIPPING_BIN)") end
  return "http://" .. addr, pidline and pidline:match("pid (%d+)")
end

local function rows(db, q)
  local out = {}
  local res = assert(db:query(q, {}, { max_rows = 1000 }))
  for _, r in ipairs(res.rows) do
    local v = r[res.columns[1]]
    out[#out + 1] = v == nil and "NULL" or tostring(v)
  end
  return table.concat(out, "|")
end

local function maildir(dir, sub)
  local p = io.popen("ls -1 " .. shq(dir .. "/outbox/" .. sub) .. " 2>/dev/null")
  local n, last = 0, nil
  for l in p:lines() do
    n = n + 1
    local f = io.open(dir .. "/outbox/" .. sub .. "/" .. l, "rb")
    if f then last = f:read("a") f:close() end
  end
  p:close()
  return n, last
end

return {
  description = "ShopBot returns: scripted conversations",
  concurrency = 4,
  scenarios = {
    name = "shopbot",
    dir = "shopbot",
    mock = os.getenv("LUACT_MOCKLLM") or "build/lc-mockllm",
    run = function(sc, env)
      local ship, pid = "http://127.0.0.1:9", nil
      if not env.replay then ship, pid = start_shipping(env.dir) end
      env.shipping_pid = pid
      if sc.fail then
        -- Inside an effect: a replay skips the request (and its port).
        luact.effect("eval", "shipping_fail", sc.fail, "pure", function()
          local r = assert(luact.http.request { method = "POST", url = ship .. "/_fail", body = sc.fail })
          return r.status
        end)
      end
      local bot = shopbot.new { data_dir = env.dir, shipping_url = ship, today = "2025-06-16",
        base_url = env.base_url, model = env.model, run_id = "t", retry_delay = 0, llm_retries = 0 }
      local r = bot:run { message = env.message, input = env.input }
      bot:close()
      local traj = {}
      for _, e in ipairs(r.transcript or {}) do
        if e.kind == "action" and not e.refused then traj[#traj + 1] = { name = e.action, args = e.args } end
      end
      return { output = r.summary or r.reason, status = r.status, error = r.status ~= "finished" and r.reason or nil,
               usage = { input = r.usage.input, output = r.usage.output }, trajectory = traj,
               steps = r.usage.actions, transcript = r.transcript, run = r }
    end,
    -- The world after the conversation: shop.db, shipping.db, the outbox.
    state = function(sc, env, res)
      local shop = assert(luact.sql.open(env.dir .. "/shop.db", { readonly = true }))
      local shipdb = luact.sql.open(env.dir .. "/shipping.db", { readonly = true })
      local st = {
        state = res.run and res.run.state,
        returns = rows(shop, "SELECT order_number || ' ' || item_ids || ' ' || status || ' ' || " ..
          "coalesce(emailed_to, '-') || ' ' || coalesce(label_id, '-') FROM returns"),
      }
      shop:close()
      if shipdb then
        st.labels = tonumber(rows(shipdb, "SELECT count(*) FROM labels"))
        st.requests = tonumber(rows(shipdb, "SELECT count(*) FROM requests"))
        st.request_log = rows(shipdb, "SELECT idempotency_key || ' ' || status || ' ' || coalesce(label_id, '-') FROM requests ORDER BY id")
        st.label_request = rows(shipdb, "SELECT request_body FROM labels")
        st.null_keys = tonumber(rows(shipdb, "SELECT count(*) FROM requests WHERE idempotency_key IS NULL"))
        shipdb:close()
      end
      st.outbox_new, st.message = maildir(env.dir, "new")
      st.outbox_tmp = maildir(env.dir, "tmp")
      local u = res.run and res.run.usage or {}
      st.refused, st.check_failures, st.tool_retries, st.tool_errors = u.refused, u.check_failures, u.tool_retries, u.tool_errors
      st.actions = {}
      for _, e in ipairs(res.transcript or {}) do
        if e.kind == "action" then
          st.actions[#st.actions + 1] = { action = e.action, refused = e.refused or false,
                                          text = luact.json.encode(e) }
        end
      end
      if env.shipping_pid then os.execute("kill " .. env.shipping_pid .. " 2>/dev/null") end
      return st
    end,
  },
}
