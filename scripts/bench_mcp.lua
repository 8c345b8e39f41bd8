-- scripts/bench_mcp.lua: luact's side of scripts/bench-mcp: N calls of
-- server-everything's echo through luact.mcp, C concurrent tasks on one
-- session; prints luact's own CPU per call (os.clock: the server's CPU,
-- a child process, is not in it).
local mode, n, target, conc = arg[1], tonumber(arg[2]), arg[3], tonumber(arg[4] or 1)
local label = arg[5] and ("luact-" .. arg[5]) or "luact" -- store / no-store
local spec = mode == "http" and { url = target } or { command = "node", args = { target, "stdio" } }
local s = assert(luact.mcp.connect(spec))
local echo = s.tool.echo
assert(echo { message = "warm" })
local c0, t0 = os.clock(), luact.now()
local next = 0
local function worker()
  while next < n do
    next = next + 1
    assert(echo { message = "x" }) -- a luact tool call: validation, effect, timeout
  end
end
local ts = {}
for i = 1, conc do ts[i] = luact.spawn(worker) end
for i = 1, conc do luact.wait(ts[i]) end
local cpu, wall = os.clock() - c0, luact.now() - t0
local f = io.open("/proc/self/status")
local rss = f:read("a"):match("VmRSS:%s*(%d+)")
f:close()
print(luact.json.encode { client = label, mode = mode, n = n, conc = conc,
  cpu_us_per_call = cpu * 1e6 / n, wall_ms = wall * 1000, rss_mb = tonumber(rss) / 1024 })
s:close()
