-- control.lua: structured concurrency built on spawn / select / wait / kill.
-- Embedded in the binary as source text; loaded into the luact module.
local luact = ...

local spawn, select, wait, kill = luact.spawn, luact.select, luact.wait, luact.kill
local pack, unpack = table.pack, table.unpack

-- Waits for every handle; on the first failure kills the rest and raises an
-- error that names the branch. Results keep the keys of the input table.
local function join_all(keys, handles, what)
  local results, pending = {}, {}
  for i = 1, #handles do pending[i] = i end
  while #pending > 0 do
    local list = {}
    for i, idx in ipairs(pending) do list[i] = handles[idx] end
    local first = select(list)
    local idx = table.remove(pending, first)
    local r = pack(wait(handles[idx]))
    if not r[1] then
      for _, other in ipairs(pending) do kill(handles[other], what .. ": a sibling branch failed") end
      error(string.format("%s: branch %s failed: %s", what, tostring(keys[idx]), tostring(r[2])), 0)
    end
    results[keys[idx]] = r.n <= 2 and r[2] or { unpack(r, 2, r.n) }
  end
  return results
end

--- parallel{f1, f2, ...} or parallel{name = f, ...}: runs every function
-- concurrently; returns a table of their results (first result each, or a
-- list when a branch returns several) under the same keys.
function luact.parallel(fns)
  if type(fns) ~= "table" then error("luact.parallel: expected a table of functions", 2) end
  local keys, handles = {}, {}
  for k, fn in pairs(fns) do
    if type(fn) ~= "function" then
      error("luact.parallel: branch " .. tostring(k) .. " is not a function", 2)
    end
    keys[#keys + 1] = k
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for i, k in ipairs(keys) do handles[i] = spawn(fns[k]) end
  if #handles == 0 then return {} end
  return join_all(keys, handles, "luact.parallel")
end

--- map(list, fn, {concurrency = k}): fn(item, index) for every item, at most
-- k at a time (default: all); returns the results in list order. The first
-- failure cancels what is in flight and raises.
function luact.map(list, fn, opts)
  if type(list) ~= "table" then error("luact.map: expected a list", 2) end
  if type(fn) ~= "function" then error("luact.map: expected a function", 2) end
  local k = opts and opts.concurrency or #list
  if type(k) ~= "number" or k < 1 then error("luact.map: concurrency must be >= 1", 2) end
  local results, n, next_i = {}, #list, 1
  local running, idx_of = {}, {}
  while next_i <= n or #running > 0 do
    while next_i <= n and #running < k do
      local i = next_i
      local h = spawn(fn, list[i], i)
      running[#running + 1] = h
      idx_of[h] = i
      next_i = next_i + 1
    end
    local first = select(running)
    local h = table.remove(running, first)
    local r = pack(wait(h))
    if not r[1] then
      for _, other in ipairs(running) do kill(other, "luact.map: another item failed") end
      error(string.format("luact.map: item %d failed: %s", idx_of[h], tostring(r[2])), 0)
    end
    results[idx_of[h]] = r[2]
  end
  return results
end

--- race{f1, f2, ...}: the first branch to finish wins; the others are
-- cancelled. Returns the winner's results, then its key. A failing branch
-- loses unless all fail; then the last error is raised.
function luact.race(fns)
  local keys, handles = {}, {}
  for k, fn in pairs(fns) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for i, k in ipairs(keys) do handles[i] = spawn(fns[k]) end
  local last_err
  while #handles > 0 do
    local first = select(handles)
    local h = table.remove(handles, first)
    local key = table.remove(keys, first)
    local r = pack(wait(h))
    if r[1] then
      for _, other in ipairs(handles) do kill(other, "luact.race: lost") end
      local out = { unpack(r, 2, r.n) }
      out[#out + 1] = key
      return unpack(out, 1, r.n)
    end
    last_err = r[2]
  end
  error("luact.race: every branch failed; last error: " .. tostring(last_err), 0)
end

--- timeout(seconds, fn, ...): runs fn; if it takes longer it is cancelled
-- (its in-flight calls included) and timeout returns nil, msg, "timeout".
function luact.timeout(seconds, fn, ...)
  if type(seconds) ~= "number" or seconds < 0 then error("luact.timeout: seconds must be >= 0", 2) end
  if type(fn) ~= "function" then error("luact.timeout: expected a function", 2) end
  local work = spawn(fn, ...)
  local timer = spawn(luact.sleep, seconds)
  local first = select({ work, timer })
  if first == 2 then
    wait(timer)
    kill(work, "timeout")
    return nil, string.format("timed out after %g s", seconds), "timeout"
  end
  kill(timer, "done")
  local r = pack(wait(work))
  if not r[1] then error(r[2], 0) end
  return unpack(r, 2, r.n)
end
