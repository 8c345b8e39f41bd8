-- expect: ok: "clean"
local bad = { io = 1, os = 1, package = 1, debug = 1, require = 1, dofile = 1,
              loadfile = 1, collectgarbage = 1 }
for k in pairs(_G) do if bad[k] then error("found " .. k) end end
for k in pairs(string) do if k == "dump" then error("found dump") end end
for k in pairs(math) do if k == "random" then error("found random") end end
local k = next(_G)
while k do k = next(_G, k) end
return "clean"
