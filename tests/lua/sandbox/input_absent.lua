-- expect: ok: [true, "function"]
-- `input` is declared even when the host passes none
return { input == nil, type(print) }
