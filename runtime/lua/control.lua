-- control.lua: structured concurrency built on luact.group.
-- Embedded in the binary as source text; loaded into the luact module.
local luact, check_opts = ...

local group = luact.group
local pack, unpack = table.pack, table.unpack

-- Every helper below is built on luact.group(): tasks report in the order
-- they finish, each taken in O(1), so ten thousand branches cost no more
-- per branch than three.

local function sorted_keys(fns, what)
  if type(fns) ~= "table" then error(what .. ": expected a table of functions", 3) end
  local keys = {}
  for k, fn in pairs(fns) do
    if type(fn) ~= "function" then
      error(what .. ": branch " .. tostring(k) .. " is not a function", 3)
    end
    keys[#keys + 1] = k
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

--- parallel{f1, f2, ...} or parallel{name = f, ...}: runs every function
-- concurrently; returns a table of their results (first result each, or a
-- list when a branch returns several) under the same keys. The first
-- failure cancels the others and raises an error that names the branch.
function luact.parallel(fns)
  local keys = sorted_keys(fns, "luact.parallel")
  local g, key_of = group(), {}
  for _, k in ipairs(keys) do key_of[g:spawn(fns[k])] = k end
  local results = {}
  while true do
    local r = pack(g:next())
    if r[1] == nil then return results end
    if not r[2] then
      g:kill("luact.parallel: a sibling branch failed")
      error(string.format("luact.parallel: branch %s failed: %s", tostring(key_of[r[1]]), tostring(r[3])), 0)
    end
    results[key_of[r[1]]] = r.n <= 3 and r[3] or { unpack(r, 3, r.n) }
  end
end

--- map(list, fn, {concurrency = k}): fn(item, index) for every item, at most
-- k at a time (default: all); returns the results in list order. The first
-- failure cancels what is in flight and raises.
function luact.map(list, fn, opts)
  if type(list) ~= "table" then error("luact.map: expected a list", 2) end
  if type(fn) ~= "function" then error("luact.map: expected a function", 2) end
  if opts ~= nil then
    if type(opts) ~= "table" then error("luact.map: options must be a table {concurrency=}", 2) end
    local bad = check_opts(opts, "luact.map")
    if bad then error(bad, 2) end
  end
  local n = #list
  local k = opts and opts.concurrency or n
  -- not (k >= 1): NaN passed 'k < 1' and the map spawned nothing
  if type(k) ~= "number" or not (k >= 1) then error("luact.map: concurrency must be >= 1", 2) end
  local g, item_of, results, next_i = group(), {}, {}, 1
  while true do
    while next_i <= n and g:pending() < k do
      item_of[g:spawn(fn, list[next_i], next_i)] = next_i
      next_i = next_i + 1
    end
    local id, ok, v = g:next()
    if id == nil then return results end
    local i = item_of[id]
    item_of[id] = nil
    if not ok then
      g:kill("luact.map: another item failed")
      error(string.format("luact.map: item %d failed: %s", i, tostring(v)), 0)
    end
    results[i] = v
  end
end

--- race{f1, f2, ...}: the first branch to finish wins; the others are
-- cancelled. Returns the winner's results, then its key. A failing branch
-- loses unless all fail; then the last error is raised.
function luact.race(fns)
  local keys = sorted_keys(fns, "luact.race")
  local g, key_of = group(), {}
  for _, k in ipairs(keys) do key_of[g:spawn(fns[k])] = k end
  local last_err
  while true do
    local r = pack(g:next())
    if r[1] == nil then break end
    if r[2] then
      g:kill("luact.race: lost")
      local out = { unpack(r, 3, r.n) }
      out[#out + 1] = key_of[r[1]]
      return unpack(out, 1, r.n - 1)
    end
    last_err = r[3]
  end
  error("luact.race: every branch failed; last error: " .. tostring(last_err), 0)
end

-- luact.timeout(seconds, fn, ...) is in C (runtime/bindings/l_task.c): every tool
-- call runs under it, and there it costs one task and one loop timer.
