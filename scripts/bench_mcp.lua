-- scripts/bench_mcp.lua: luact's side of scripts/bench-mcp: N calls of
-- server-everything's echo through luact.mcp, C concurrent tasks on one
-- session, after WARM calls made the same way and not counted; prints
-- luact's own CPU per call (os.clock: the server's CPU, a child process,
-- is not in it).
local mode, n, target, conc = arg[1], tonumber(arg[2]), arg[3], tonumber(arg[4] or 1)
local label = arg[5] and ("luact-" .. arg[5]) or "luact" -- store / no-store
local spec = mode == "http" and { url = target } or { command = "node", args = { target, "stdio" } }
local warm = tonumber(arg[6] or 0) -- calls made first, not measured
local s = assert(luact.mcp.connect(spec))
local echo = s.tool.echo
assert(echo { message = "warm" })
local function calls(count)
  local next = 0
  local function worker()
    while next < count do
      next = next + 1
      assert(echo { message = "x" }) -- a luact tool call: validation, effect, timeout
    end
  end
  local ts = {}
  for i = 1, conc do ts[i] = luact.spawn(worker) end
  for i = 1, conc do luact.wait(ts[i]) end
end
if warm > 0 then calls(warm) end
-- user and system time apart (clock ticks of /proc/self/stat, 1/100 s)
local function ticks()
  local f = io.open("/proc/self/stat")
  local st = f:read("a"):match("%) (.*)")
  f:close()
  local v = {}
  for x in st:gmatch("%S+") do v[#v + 1] = x end
  return tonumber(v[12]), tonumber(v[13]) -- utime, stime (fields 14, 15)
end
local u0, s0 = ticks()
local c0, t0 = os.clock(), luact.now()
calls(n)
local cpu, wall = os.clock() - c0, luact.now() - t0
local u1, s1 = ticks()
local f = io.open("/proc/self/status")
local rss = f:read("a"):match("VmRSS:%s*(%d+)")
f:close()
print(luact.json.encode { client = label, mode = mode, n = n, conc = conc, warm = warm,
  cpu_us_per_call = cpu * 1e6 / n, user_us = (u1 - u0) * 1e4 / n, sys_us = (s1 - s0) * 1e4 / n, wall_ms = wall * 1000, rss_mb = tonumber(rss) / 1024 })
s:close()
