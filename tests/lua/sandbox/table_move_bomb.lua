-- expect: error: table.move: range too large
table.move({}, 1, math.maxinteger - 1, 2)
