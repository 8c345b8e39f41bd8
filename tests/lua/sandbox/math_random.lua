-- expect: error: attempt to call a nil value (field 'random')
-- randomness comes from the runtime, so replays stay deterministic
return math.random(1, 6)
