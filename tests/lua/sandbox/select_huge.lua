-- expect: error: bad argument #1 to 'select'
return select(-1e9, 1, 2, 3)
