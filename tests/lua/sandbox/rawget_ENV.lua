-- expect: ok: [true, true, true]
-- raw access finds nothing hidden behind the allowlist
return { rawget(_ENV, "os") == nil, rawget(_G, "debug") == nil,
         rawget(_ENV, "io") == nil }
