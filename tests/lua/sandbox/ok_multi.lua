-- expect: ok: [1, "two", {"three": [3]}]
return 1, "two", { three = { 3 } }
