-- expect: error: cannot create global 'counter'
counter = 1
return counter
