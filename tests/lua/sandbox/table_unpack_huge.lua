-- expect: error: too many results to unpack
return select("#", table.unpack({}, 1, 1e8))
