-- expect: error: attempt to call a nil value (field 'randomseed')
math.randomseed(42)
